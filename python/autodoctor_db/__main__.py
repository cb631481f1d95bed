"""``python -m autodoctor_db`` is the ``autodoctor-db`` command."""

import sys

from .cli import main

sys.exit(main())
