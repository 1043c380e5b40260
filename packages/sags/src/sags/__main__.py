"""``python -m sags`` == the ``sags`` script."""

import sys

from sags.cli import main

sys.exit(main())
