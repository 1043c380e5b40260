"""``python -m cfpl`` == the ``cfpl`` script."""

import sys

from cfpl.cli import main

sys.exit(main())
