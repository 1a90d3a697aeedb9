"""A :class:`~kernelext.domain.terminal.TerminalSession` on this process's own terminal: the CLI's
``exec -it``, ``run -it``, ``start -a`` and ``attach`` of a remote TTY container (docs/architecture.md §16).

The terminal is put in raw mode (the remote TTY does the line editing and echo), keystrokes go to the
session as typed except podman's detach sequence, the session's output is written here as it comes,
and a resize of this terminal (SIGWINCH) is passed on.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from typing import TYPE_CHECKING

from kernelext.oci.attach import DEFAULT_DETACH_KEYS, Detached, DetachFilter, parse_detach_keys

if TYPE_CHECKING:
    from kernelext.domain.engine import Engine
    from kernelext.domain.remote import RemoteEngine
    from kernelext.domain.terminal import TerminalSession

#: How often the input loop looks whether the session's output has ended.
POLL_S = 0.1
READ_SIZE = 4096


def remote_engine(engine: Engine) -> RemoteEngine:
    from kernelext.domain.remote import RemoteEngine

    assert isinstance(engine, RemoteEngine), "a remote terminal needs the remote engine"
    return engine


def size() -> tuple[int, int]:
    """This terminal's size, else the session's default."""
    from kernelext.cli.commands import _terminal_size
    from kernelext.domain.terminal import DEFAULT_SIZE

    return _terminal_size(True) or DEFAULT_SIZE


def session_and_wait(session: TerminalSession, detach_keys: str | None) -> int:
    """Drive ``session`` from this terminal until its process ends (its exit code) or the user detaches (0)."""
    from kernelext.cli.commands import _terminal

    keys = DetachFilter(parse_detach_keys(DEFAULT_DETACH_KEYS if detach_keys is None else detach_keys))
    ended = threading.Event()

    def copy_output() -> None:
        try:
            while (data := session.read()) is not None:
                os.write(sys.stdout.fileno(), data)
        finally:
            ended.set()
    reader = threading.Thread(target=copy_output, name="terminal output", daemon=True)
    reader.start()
    stdin = sys.stdin.fileno()
    with _terminal(session.resize, True):
        try:
            while not ended.is_set():
                if not select.select([stdin], [], [], POLL_S)[0]:
                    continue
                data = os.read(stdin, READ_SIZE)
                if not data:  # end of input: the output is still shown until the process ends
                    ended.wait()
                    break
                session.write(keys.feed(data))
        except Detached:
            session.detach()
            with contextlib.suppress(OSError):
                os.write(sys.stdout.fileno(), b"\r\n")
            return 0
    reader.join()
    return session.wait()
