"""``python -m diffspeaker`` == the ``diffspeaker`` script."""

import sys

from diffspeaker.cli import main

sys.exit(main())
