"""``python -m suggestion_service``: the same as the ``dcsa`` command."""

import sys

from .cli import main

sys.exit(main())
