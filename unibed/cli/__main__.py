"""`python -m unibed.cli ...` is the `unibed` command."""

import sys

from unibed.cli.main import main

sys.exit(main())
