"""``python -m pvlr`` == the ``pvlr`` script."""

import sys

from pvlr.cli import main

sys.exit(main())
