"""A remote container's terminal in the Terminal widget (docs/architecture.md §16): ``exec -it`` and
``attach``/``run -it`` through podman's hijacked API connection, driven with the widget's Python-side
protocol as tests/test_terminal.py drives the local sessions, against a real podman service."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import test_remote
from podmanservice import PODMAN, PodmanService
from test_remote import remote
from test_terminal import browser, opened, recording, typed_and_seen  # noqa: F401 - the autouse fixture

from kernelext.connections import Connection
from kernelext.domain.remote import RemoteEngine
from kernelext.domain.remoteterminal import RemoteAttachTerminal, RemoteExecTerminal
from kernelext.widgets import Terminal

from conftest import wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(PODMAN), reason="needs root and podman")]

#: test_remote's fixtures: a service of this module's own, no container left by a test.
podman, service = test_remote.podman, test_remote.service


@pytest.fixture
def engine(service: PodmanService) -> Iterator[RemoteEngine]:
    opened_engine = RemoteEngine(Connection("lab", service.url))
    yield opened_engine
    opened_engine.close()


def test_remote_exec_shell_keys_resize_interrupt_and_exit(service: PodmanService, engine: RemoteEngine) -> None:
    assert remote(service, "run", "-d", "--name", "box", "busybox", "sleep", "1000").returncode == 0
    codes: list[int] = []
    term = opened(Terminal(RemoteExecTerminal(engine, "box", ["sh"], size=(30, 100)), on_exit=codes.append),
                  rows=30, cols=100)
    try:
        assert term.title == "exec sh in box" and term.live
        assert typed_and_seen(term, "echo $((6*7))\r", r"\r\n42\r\n")
        assert typed_and_seen(term, "stty size\r", r"30 100")  # the view's size reached the remote TTY
        browser(term, "resize", rows=41, cols=123)
        assert typed_and_seen(term, "stty size\r", r"41 123")
        assert typed_and_seen(term, "tty; echo $TERM\r", r"/dev/pts/\d+\r\nxterm")
        # Ctrl-C is a byte to the remote TTY: its line discipline interrupts sleep at once
        started = time.monotonic()
        assert typed_and_seen(term, "sleep 100\r", r"sleep 100") and typed_and_seen(term, "\x03", r"\^C")
        assert typed_and_seen(term, "echo back $?; exit 3\r", r"back 130") and time.monotonic() - started < 10
        assert wait_until(lambda: term.status == "exited", timeout=15)
        assert (term.exit_code, codes, term.footer) == (3, [3], "[exec sh in box exited with code 3]")
    finally:
        term.close()


def test_remote_attach_detach_reattach_and_exit(service: PodmanService, engine: RemoteEngine) -> None:
    assert remote(service, "create", "-it", "--name", "tty", "busybox", "sh").returncode == 0
    term = opened(Terminal(RemoteAttachTerminal(engine, "tty", start=True, size=(20, 70))), rows=20, cols=70)
    try:
        assert typed_and_seen(term, "stty size; echo marker-$((2+3))\r", r"20 70\r\nmarker-5")
        term.type("\x10")  # podman's detach keys, recognised by the widget: the container keeps running
        term.type("\x11")
        assert wait_until(lambda: term.status == "detached", timeout=5)
        assert term.footer == ("[detached from tty: it keeps running; %container --connection lab attach tty "
                               "re-attaches]")
        time.sleep(0.3)
        assert remote(service, "inspect", "--format", "{{.State.Status}}", "tty").stdout == "running\n"
        again = opened(Terminal(RemoteAttachTerminal(engine, "tty", start=False, size=(25, 90))), rows=25, cols=90)
        assert typed_and_seen(again, "stty size\r", r"25 90")
        again.type("exit 5\r")
        assert wait_until(lambda: again.status == "exited", timeout=15)
        assert again.exit_code == 5
        assert term.exit_code is None  # the detached view never claims the exit
    finally:
        term.close()


def test_remote_terminals_from_the_magics(service: PodmanService) -> None:
    """``%container --url URL exec -it`` and ``run -it --rm`` return the widget on the remote TTY."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kernelext")

    def magic(line: str) -> Any:
        return shell.run_line_magic("container", f"--url {service.url} {line}")
    term = magic("run -it --rm --name live busybox sh")
    try:
        assert isinstance(term, Terminal)
        opened(term)
        assert typed_and_seen(term, "echo in-$((1+1))\r", r"in-2")
        shell_term = opened(magic("exec -it live sh"))
        assert typed_and_seen(shell_term, "echo exec-$((2+2)); exit 4\r", r"exec-4")
        assert wait_until(lambda: shell_term.status == "exited", timeout=15) and shell_term.exit_code == 4
        term.type("exit 6\r")
        assert wait_until(lambda: term.status == "exited", timeout=15) and term.exit_code == 6
        assert wait_until(lambda: service.remote("ps", "-a", "-q").stdout == "")  # --rm
    finally:
        term.close()
