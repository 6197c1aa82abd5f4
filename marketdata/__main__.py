"""`python -m marketdata ...`: the same as the `marketdata` command."""

import sys

from marketdata.cli import main

sys.exit(main())
