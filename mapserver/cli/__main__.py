"""``python -m mapserver.cli``: the ``mapserver`` command."""

import sys

from mapserver.cli import main

sys.exit(main())
