"""``python -m gal4p`` == the ``gal4p`` script."""

import sys

from gal4p.cli import main

sys.exit(main())
