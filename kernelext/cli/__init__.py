"""The ``kernelext`` command line: podman's subcommands on the kernelext core.

``console`` is the installed command: it hands the command to the fork server
(:mod:`kernelext.cli.launch`) when one can serve it, else runs it here with
``main``. Nothing heavy is imported at this level: it is the command's start-up.
"""

from __future__ import annotations

import sys

__all__ = ["console", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run one command (``argv`` without the program name) in this process; its exit code."""
    from kernelext.cli.app import main as run_here

    return run_here(sys.argv[1:] if argv is None else argv)


def console() -> int:
    """The ``kernelext`` command."""
    from kernelext.cli.launch import run_command

    code = run_command(sys.argv[1:])
    return main() if code is None else code
