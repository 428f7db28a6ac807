"""``python -m cachepin_tools.simulator``: run the gateway simulator until SIGTERM or SIGINT."""

import sys

from cachepin_tools.simulator.server import main

sys.exit(main())
