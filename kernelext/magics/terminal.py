"""``-it`` in a cell: the container's TTY in a ``Terminal`` widget (docs/architecture.md §14).

``run -it``, ``exec -it``, ``start -ai`` and ``attach`` (of a TTY container)
return the widget at once; the kernel stays free and ``_exit_code`` is set
when the process ends. Plain IPython on a real terminal has a TTY of its own:
there the CLI's attach runs instead, as ``kernelext run -it`` would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernelext.core.container import Container
    from kernelext.domain.terminal import TerminalSession
    from kernelext.widgets.terminal import Terminal


def has_real_terminal(shell: Any) -> bool:
    """Plain IPython on a terminal (no kernel between the user and this process)."""
    return getattr(shell, "kernel", None) is None and sys.stdin.isatty() and sys.stdout.isatty()


def widget(session_factory: Callable[[], TerminalSession], detach_keys: str | None,
           on_exit: Callable[[int], object]) -> Terminal:
    """The terminal on a new session; a bad ``--detach-keys`` is refused before anything starts."""
    from kernelext.widgets.terminal import Terminal

    return Terminal(session_factory, detach_keys=detach_keys, on_exit=on_exit)


def attach(shell: Any, ctr: Container, *, start: bool, remove: bool, detach_keys: str | None,
           on_exit: Callable[[int], object]) -> Terminal | None:
    """A TTY container's terminal (``run -it``, ``start -ai``, ``attach``)."""
    from kernelext.domain.terminal import AttachTerminal

    if has_real_terminal(shell):
        from kernelext.cli.commands import attach_and_wait

        on_exit(attach_and_wait(ctr, start=start, stdin=True, detach_keys=detach_keys, remove=remove))
        return None
    return widget(lambda: AttachTerminal(ctr, start=start, remove=remove), detach_keys, on_exit)


def exec_(shell: Any, ctr: Container, command: list[str], *, env: list[str], workdir: str | None,
          user: str | None, detach_keys: str | None, on_exit: Callable[[int], object]) -> Terminal | None:
    """``exec -it``: a shell (or any command) on a new TTY in the running container."""
    from kernelext.domain.terminal import ExecTerminal

    if has_real_terminal(shell):
        def write(_stream: str, data: bytes) -> None:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        result = ctr.exec_run(command, tty=True, stdin=sys.stdin.buffer, env=env, workdir=workdir, user=user,
                              on_output=write)
        on_exit(result.exit_code)
        return None
    return widget(lambda: ExecTerminal(ctr, command, env=env, workdir=workdir, user=user), detach_keys, on_exit)
