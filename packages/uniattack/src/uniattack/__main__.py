"""``python -m uniattack`` == the ``uniattack`` script."""

import sys

from uniattack.cli import main

sys.exit(main())
