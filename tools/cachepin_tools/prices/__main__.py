"""``python -m cachepin_tools.prices``: regenerate the shipped price table (see ``update.main``)."""

import sys

from cachepin_tools.prices.update import main

sys.exit(main())
