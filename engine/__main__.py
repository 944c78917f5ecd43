"""``python -m engine`` is ``gatlens``."""

import sys

from engine.cli import main

sys.exit(main())
