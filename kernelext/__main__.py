"""``python -m kernelext``: the CLI."""

import sys

from kernelext.cli import main

sys.exit(main())
