"""``python -m cachepin_tools.bench``: run the benchmark (``--help`` explains each measurement)."""

import sys

from cachepin_tools.bench.measure import main

sys.exit(main())
