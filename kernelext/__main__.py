"""``python -m kernelext``: the CLI."""

import sys

from kernelext.cli import console

sys.exit(console())
