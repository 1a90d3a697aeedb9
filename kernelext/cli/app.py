"""One ``kernelext`` command, run in this process: parse, open the store, dispatch, report."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence

from kernelext.cli.parser import HelpRequested, UsageError, parse_args
from kernelext.errors import KernelextError

ERROR_EXIT = 125


class _PodmanStyle(logging.Formatter):
    """``WARN[0002] message``: the level and the seconds since the command started."""

    def __init__(self) -> None:
        super().__init__()
        self._start = time.monotonic()  # per command: a fork server's child did not start at import

    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "WARN", "CRITICAL": "FATA"}.get(record.levelname, record.levelname[:4])
        return f"{level}[{int(time.monotonic() - self._start):04d}] {record.getMessage()}"


def main(argv: Sequence[str], report: Callable[[int], None] | None = None) -> int:
    """Run one command; its exit code. ``report`` gets the code as soon as the outcome is final, before the
    store's housekeeping at close (waiting for the trash), so that a fork server's command can return."""
    try:
        args = parse_args(argv)
    except HelpRequested as shown:
        sys.stdout.write(shown.text)
        return 0
    except UsageError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return ERROR_EXIT
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PodmanStyle())
    logger = logging.getLogger("kernelext")
    logger.addHandler(handler)
    logger.setLevel(args.log_level.upper())

    from kernelext.cli.commands import COMMANDS, ENGINE_COMMANDS, STORELESS_COMMANDS
    from kernelext.connections import resolve
    from kernelext.domain.engine import engine_for

    stdout = sys.stdout
    if args.noout:  # podman's --noout: the command's own output goes nowhere, its errors still show
        sys.stdout = open(os.devnull, "w")
    try:
        if getattr(args, "preserve_fds", 0):  # before the store opens descriptors that could take their numbers
            from kernelext.oci.monitoring import check_preserved_fds

            check_preserved_fds(args.preserve_fds)
        if args.cmd in STORELESS_COMMANDS:
            return COMMANDS[args.cmd](None, args)
        connection = resolve(args.connection, args.url, args.identity)
        if connection is not None:  # a podman service elsewhere: no local store is opened
            engine = engine_for(connection)
            try:
                run_command = COMMANDS[args.cmd]
                code = run_command(engine if args.cmd in ENGINE_COMMANDS else engine.local(args.cmd), args)
                if report is not None:  # closing the connection (an SSH tunnel) is housekeeping too
                    report(code)
                return code
            finally:
                engine.close()
        # the local core's modules only now: a remote command never imports them (docs/architecture.md §16)
        from kernelext.core.runtime import Runtime
        from kernelext.domain.containers import events_backend

        with Runtime(args.root, args.runroot, criu=args.criu) as rt:
            events_backend(rt, args.events_backend)
            code = COMMANDS[args.cmd](engine_for(runtime=rt) if args.cmd in ENGINE_COMMANDS else rt, args)
            if report is not None:
                report(code)
            return code
    except KernelextError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # e.g. a store this user may not open: one line, as podman
        sys.stderr.write(f"Error: {exc}\n")
        return ERROR_EXIT
    finally:
        logger.removeHandler(handler)
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout
