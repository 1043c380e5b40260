"""``python -m vislab`` == the ``vislab`` command."""

import sys

from vislab.cli import main

sys.exit(main())
