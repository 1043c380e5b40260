"""``python -m compinv`` == the ``compinv`` script."""

import sys

from compinv.cli import main

sys.exit(main())
