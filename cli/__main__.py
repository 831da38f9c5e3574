"""``python -m cli``: the same as the ``peakops`` command."""

import sys

from cli.main import main

sys.exit(main())
