"""``python -m incantations`` == the ``incantations`` script."""

import sys

from incantations.cli import main

sys.exit(main())
