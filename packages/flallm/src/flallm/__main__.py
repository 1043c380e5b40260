"""``python -m flallm`` == the ``flallm`` script."""

import sys

from flallm.cli import main

sys.exit(main())
