"""``python -m support.backend`` runs the ``refbackend`` console script."""

import sys

from .cli import main

sys.exit(main())
