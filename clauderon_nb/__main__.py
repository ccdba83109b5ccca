"""``python -m clauderon_nb``: the same as the ``clauderon-nb`` command."""

import sys

from .frontends.cli import main

sys.exit(main())
