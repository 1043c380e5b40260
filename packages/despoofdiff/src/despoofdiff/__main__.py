"""``python -m despoofdiff`` == the ``despoofdiff`` script."""

import sys

from despoofdiff.cli import main

sys.exit(main())
