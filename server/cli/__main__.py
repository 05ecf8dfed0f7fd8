"""`python -m server.cli`: the same as the `batm-server` console script."""

import sys

from server.cli.main import main

sys.exit(main())
