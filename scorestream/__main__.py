"""`python -m scorestream`: the same front door as the `scorestream` command."""

import sys

from scorestream.cli import main

sys.exit(main())
