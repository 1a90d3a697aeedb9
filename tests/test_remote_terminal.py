"""A remote container's terminal in the Terminal widget (docs/architecture.md §16): ``exec -it`` and
``attach``/``run -it`` through podman's hijacked API connection, driven with the widget's Python-side
protocol as tests/test_terminal.py drives the local sessions, against a real podman service."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
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


class OnATerminal:
    """The CLI on a pseudo-terminal of the test's own (30x100), as a user at a terminal runs it."""

    def __init__(self, service: PodmanService, *argv: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.master, self.seen = master, bytearray()
        self.process = subprocess.Popen([sys.executable, "-m", "kernelext", "--url", service.url, *argv],
                                        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                        env={**os.environ, "KERNELEXT_FORKSERVER": "0"})
        os.close(slave)

    def until(self, pattern: str, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while re.search(pattern, self.seen.decode(errors="replace")) is None and time.monotonic() < deadline:
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    break
                self.seen.extend(data)
                if b"\x1b[6n" in data:  # a cursor position query: answered, as a terminal does (after "/ # ")
                    os.write(self.master, b"\x1b[1;5R")
        return re.search(pattern, self.seen.decode(errors="replace")) is not None

    def prompt(self, before: str = "") -> bool:
        """busybox's shell prompt (after ``before``); its cursor position query answered (keys typed before the
        answer was read would be taken for it), then a moment for the shell to read the answer."""
        found = self.until(before + r"/ # \x1b\[6n")
        time.sleep(0.3)
        return found

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def exit_code(self, timeout: float = 30) -> int:
        """The CLI's exit code; its terminal read meanwhile, as a terminal does."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self.until("$^", timeout=0.2)
        code = self.process.wait(timeout=1)
        os.close(self.master)
        return code


def test_remote_terminals_on_the_clis_terminal(service: PodmanService) -> None:
    assert remote(service, "run", "-d", "--name", "box", "busybox", "sleep", "1000").returncode == 0
    execed = OnATerminal(service, "exec", "-it", "box", "sh")
    assert execed.prompt(), execed.seen
    execed.type("stty size; tty; echo $((6*7))\r")
    assert execed.prompt(r"30 100\r\n/dev/pts/\d+\r\n42\r\n"), execed.seen  # the CLI's terminal size reached it
    execed.type("exit 3\r")
    assert execed.exit_code() == 3
    # run -it --rm: the container's own TTY, its exit code, then removed
    ran = OnATerminal(service, "run", "-it", "--rm", "--name", "live", "busybox", "sh")
    assert ran.prompt()
    ran.type("echo in-$((1+1)); exit 5\r")
    assert ran.until("in-2") and ran.exit_code() == 5
    assert wait_until(lambda: service.remote("ps", "-a", "--format", "{{.Names}}").stdout == "box\n")
    # start -a, detach with podman's keys (it keeps running), attach again, exit
    assert remote(service, "create", "-it", "--name", "tty", "busybox", "sh").returncode == 0
    started = OnATerminal(service, "start", "-a", "tty")
    assert started.prompt()
    started.type("echo m-$((2+3))\r")
    assert started.prompt(r"m-5\r\n")
    started.type("\x10\x11")
    assert started.exit_code() == 0
    assert remote(service, "inspect", "--format", "{{.State.Status}}", "tty").stdout == "running\n"
    attached = OnATerminal(service, "attach", "tty")
    # a running shell draws nothing on its own: Enter until the prompt shows (the CLI attaches meanwhile)
    assert any(attached.type("\r") or attached.until("/ # ", timeout=1) for _ in range(30)), attached.seen
    assert attached.prompt()
    attached.type("exit 7\r")
    assert attached.exit_code() == 7
    assert remote(service, "inspect", "--format", "{{.State.ExitCode}}", "tty").stdout == "7\n"
