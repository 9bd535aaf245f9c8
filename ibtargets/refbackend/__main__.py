"""``python -m ibtargets.refbackend`` runs the ``refbackend`` console script."""

import sys

from ibtargets.refbackend.cli import main

sys.exit(main())
