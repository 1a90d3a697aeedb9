"""The terminal widget's message protocol driven from Python, on real containers (runc, conmon): what a
browser would send (``ready``, ``input``, ``resize``, ``ack``, ``detach``) and what comes back."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import comm
import pytest
from comm.base_comm import BaseComm
from IPython.core.interactiveshell import InteractiveShell
from test_magics import magic  # the magic call (the IPython shell fixture `ip` is in conftest)

from kernelext import ContainerStatus, KernelextError
from kernelext.domain.terminal import AttachTerminal, ExecTerminal
from kernelext.widgets import Terminal
from kernelext.widgets.terminal import PENDING_LIMIT, REORDER_LIMIT, WINDOW, InOrder

from conftest import Store, wait_until


class BufferComm(BaseComm):
    """Keeps every custom message a widget sends, with its binary buffers."""

    sent: ClassVar[list[tuple[str, dict[str, Any], list[bytes]]]] = []
    auto_ack: ClassVar[bool] = True
    widgets: ClassVar[dict[str, Terminal]] = {}

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        if data and data.get("method") == "custom":
            content = data["content"]
            BufferComm.sent.append((self.comm_id, content, [bytes(b) for b in buffers or []]))
            widget = BufferComm.widgets.get(self.comm_id)
            if BufferComm.auto_ack and widget is not None and content.get("type") == "data":
                widget._on_frontend_message(widget, {"type": "ack", "seq": content["seq"]}, [])  # drawn at once


@pytest.fixture(autouse=True)
def recording(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    BufferComm.sent, BufferComm.auto_ack, BufferComm.widgets = [], True, {}
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: BufferComm(*a, **k))
    yield


def opened(term: Terminal, rows: int = 24, cols: int = 80) -> Terminal:
    """The widget as a browser view opens it: registered for acks, then ``ready`` with its size."""
    BufferComm.widgets[term.comm.comm_id] = term
    browser(term, "ready", rows=rows, cols=cols)
    return term


def browser(term: Terminal, kind: str, **content: Any) -> None:
    term._on_frontend_message(term, {"type": kind, **content}, [])


def screen(term: Terminal) -> str:
    """Everything drawn since the view's last reset, as text."""
    out = b""
    for comm_id, content, buffers in BufferComm.sent:
        if comm_id != term.comm.comm_id:
            continue
        if content["type"] == "reset":
            out = b""
        elif content["type"] == "data":
            out += b"".join(buffers)
    return out.decode(errors="replace")


def typed_and_seen(term: Terminal, text: str, pattern: str, timeout: float = 20) -> bool:
    before = len(screen(term))
    term.type(text)
    return wait_until(lambda: re.search(pattern, screen(term)[before:]) is not None, timeout=timeout)


def test_exec_shell_keys_resize_interrupt_and_exit(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="box")
    codes: list[int] = []
    term = opened(Terminal(ExecTerminal(ctr, ["sh"]), on_exit=codes.append), rows=30, cols=100)
    try:
        assert term.title == "exec sh in box" and term.live
        assert typed_and_seen(term, "echo $((6*7))\r", r"\r\n42\r\n")
        assert typed_and_seen(term, "stty size\r", r"30 100")  # the view's size reached the TTY
        browser(term, "resize", rows=41, cols=123)
        assert typed_and_seen(term, "stty size\r", r"41 123")
        assert typed_and_seen(term, "tty; echo $TERM\r", r"/dev/pts/\d+\r\nxterm")
        started = time.monotonic()
        assert typed_and_seen(term, "sleep 100\r", r"sleep 100")
        assert typed_and_seen(term, "\x03", r"\^C")  # a byte to the TTY: its line discipline interrupts sleep
        assert typed_and_seen(term, "echo back $?\r", r"back 130")
        assert typed_and_seen(term, "cat\r", r"cat\r\n")
        assert typed_and_seen(term, "line\r", r"line\r\nline\r\n")  # the TTY's echo, then cat's copy
        assert typed_and_seen(term, "\x04", r"/ # ")  # Ctrl-D: end of input for cat, the prompt again
        assert typed_and_seen(term, "sleep 100\r", r"sleep 100")
        assert typed_and_seen(term, "\x1a", r"Stopped")  # Ctrl-Z: the shell's job control stops sleep
        assert typed_and_seen(term, "fg\r", r"sleep 100")  # continued in the foreground
        assert typed_and_seen(term, "\x03", r"/ # ")
        assert typed_and_seen(term, "echo job $?\r", r"job 130")
        assert time.monotonic() - started < 10
        term.type("exit 3\r")
        assert wait_until(lambda: term.status == "exited", timeout=10)
        assert term.exit_code == 3 and codes == [3]
        assert term.footer == "[exec sh in box exited with code 3]"
        assert wait_until(lambda: "[exec sh in box exited with code 3]" in screen(term))
        drawn = screen(term)
        term.type("echo after\r")  # no more input
        time.sleep(0.3)
        assert screen(term) == drawn
        assert store.runtime.db.exec_sessions(ctr.id) == []  # the session is over for cleanup too
    finally:
        term.close()


def test_a_views_messages_are_handled_in_the_order_it_sent_them(store: Store) -> None:
    """ipykernel 7 may handle queued comm messages out of order: `exit 3` reached the TTY as `etx i3`."""
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="box")
    codes: list[int] = []
    term = opened(Terminal(ExecTerminal(ctr, ["sh"]), on_exit=codes.append))
    try:
        keys = [{"type": "input", "data": ch, "view": "v1", "n": i} for i, ch in enumerate("exit 3\r")]
        for message in (keys[0], keys[3], keys[2], keys[1], keys[6], keys[5], keys[4]):
            term._on_frontend_message(term, message, [])
        assert wait_until(lambda: term.status == "exited", timeout=10)
        assert codes == [3]
    finally:
        term.close()


def test_in_order_per_view_unnumbered_and_a_lost_message() -> None:
    order = InOrder()
    assert order.accept({"type": "input", "data": "b", "view": "a", "n": 1}) == []
    assert order.accept({"type": "resize", "view": "b", "n": 0}) == [{"type": "resize", "view": "b", "n": 0}]
    assert [m["data"] for m in order.accept({"type": "input", "data": "a", "view": "a", "n": 0})] == ["a", "b"]
    assert order.accept({"type": "ping"}) == [{"type": "ping"}]  # a client that does not number: as it comes
    held = [order.accept({"type": "input", "data": str(n), "view": "c", "n": n}) for n in range(1, REORDER_LIMIT + 2)]
    assert held[:-1] == [[]] * REORDER_LIMIT  # n=0 never came: held until the limit, then given up on
    assert [m["n"] for m in held[-1]] == list(range(1, REORDER_LIMIT + 2))


def test_attach_detach_keys_reattach_and_exit(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["sh"], name="tty", tty=True, stdin=True)
    term = opened(Terminal(AttachTerminal(ctr, start=True, size=(20, 70))), rows=20, cols=70)
    try:
        assert typed_and_seen(term, "stty size; echo marker-$((2+3))\r", r"20 70\r\nmarker-5")
        assert typed_and_seen(term, "vi /tmp/note\r", r"(~.*){10}", timeout=20)  # full screen: its empty lines
        for key in ("ihello from vi", "\x1b"):  # as typed: vi takes Esc and the next key at once as one sequence
            term.type(key)
            time.sleep(0.3)
        assert typed_and_seen(term, ":wq\r", r"/ # ")
        assert typed_and_seen(term, "cat /tmp/note\r", r"hello from vi")
        term.type("\x10")  # ctrl-p alone is held back, then sent with a key that is not ctrl-q
        term.type("\x11")
        assert wait_until(lambda: term.status == "detached", timeout=5)
        assert term.footer == "[detached from tty: it keeps running; %container attach tty re-attaches]"
        time.sleep(0.3)
        assert ctr.reload().status is ContainerStatus.RUNNING
        again = opened(Terminal(ctr), rows=25, cols=90)  # re-attach: the log's tail redraws what was there
        assert wait_until(lambda: "marker-5" in screen(again))
        assert typed_and_seen(again, "stty size\r", r"25 90")
        again.type("exit 5\r")
        assert wait_until(lambda: again.status == "exited", timeout=10)
        assert again.exit_code == 5 and ctr.reload().exit_code == 5
        assert term.exit_code is None  # the detached view never claims the exit
    finally:
        term.close()


def test_custom_detach_keys_and_a_new_view_is_redrawn(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["sh"], name="keys", tty=True, stdin=True)
    term = opened(Terminal(AttachTerminal(ctr, start=True), detach_keys="ctrl-x"))
    try:
        assert typed_and_seen(term, "\x10\x11echo still-$((1+1))\r", r"still-2")  # ctrl-p,ctrl-q are plain keys now
        before = [c for _, c, _ in BufferComm.sent if c["type"] == "reset"]
        browser(term, "ready", rows=24, cols=80)  # a page reload: reset, then the history again
        resets = [c for _, c, _ in BufferComm.sent if c["type"] == "reset"]
        assert len(resets) == len(before) + 1
        assert wait_until(lambda: "still-2" in screen(term))
        term.type("\x18")
        assert wait_until(lambda: term.status == "detached", timeout=5)
        assert ctr.reload().status is ContainerStatus.RUNNING
    finally:
        term.close()
        ctr.kill()


def test_a_flood_is_batched_and_bounded_by_the_browsers_acks(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="flood")
    BufferComm.auto_ack = False  # a page that draws nothing: the kernel must not keep sending
    term = opened(Terminal(ExecTerminal(ctr, ["sh", "-c", "yes | head -c 4000000; exit 7"])))
    try:
        assert wait_until(lambda: term.status == "exited", timeout=60)
        assert term.exit_code == 7
        assert term.sent_messages <= WINDOW  # nothing drawn, so no more than the window was sent
        BufferComm.auto_ack = True
        browser(term, "ack", seq=0)
        assert wait_until(lambda: "[exec sh -c yes | head -c 4000000; exit 7 in flood exited with code 7]"
                          in screen(term), timeout=10)
        # The TTY turns each "y\n" into "y\r\n"; what the page could not have shown was dropped, not sent.
        footer = len(f"\r\n\x1b[0m{term.footer}\r\n")
        assert term.sent_bytes + term.dropped_bytes == 6_000_000 + footer
        assert term.dropped_bytes >= 6_000_000 - WINDOW * PENDING_LIMIT
    finally:
        term.close()


def test_closing_an_exec_terminal_hangs_its_process_up(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="hup")
    term = opened(Terminal(ExecTerminal(ctr, ["sh"])))
    assert typed_and_seen(term, "echo ready\r", r"\r\nready")
    session = term.session
    term.close()
    assert wait_until(lambda: session._code is not None or session._proc.poll() is not None, timeout=10)
    assert ctr.reload().status is ContainerStatus.RUNNING


def test_magics_open_a_terminal_and_set_exit_code(ip: InteractiveShell, store: Store) -> None:
    magic(ip, "run -d --name shell busybox sleep 1000")
    term = opened(magic(ip, "exec -it shell sh"))  # the cell's value: returned at once, the kernel stays free
    assert isinstance(term, Terminal) and term.live
    assert typed_and_seen(term, "exit 6\r", r"exited with code 6")
    assert wait_until(lambda: ip.user_ns.get("_exit_code") == 6)
    missing = opened(magic(ip, "exec -it shell nosuch"))  # podman's 127: runc's error is on the screen
    assert wait_until(lambda: missing.status == "exited") and missing.exit_code == 127
    assert "executable file not found" in screen(missing)

    run = opened(magic(ip, "run -it --rm --name once busybox sh"))
    assert typed_and_seen(run, "echo $((6*7)); exit 2\r", r"42")
    assert wait_until(lambda: ip.user_ns.get("_exit_code") == 2 and not store.runtime.exists("once"), timeout=15)

    magic(ip, "create -it --name later busybox sh")
    started = opened(magic(ip, "start -ai later"))
    assert typed_and_seen(started, "echo up-$((1+1))\r", r"up-2")
    started.type("\x10\x11")
    assert wait_until(lambda: started.status == "detached")
    again = opened(magic(ip, "attach --detach-keys ctrl-x later"))
    assert wait_until(lambda: "up-2" in screen(again))
    again.type("\x18")
    assert wait_until(lambda: again.status == "detached")
    assert store.runtime.get("later").status is ContainerStatus.RUNNING

    sessions = store.runtime.db.exec_sessions(store.runtime.get("shell").id)
    with pytest.raises(KernelextError, match="invalid detach keys"):
        magic(ip, "exec -it --detach-keys ctrl-shift-x shell sh")
    assert store.runtime.db.exec_sessions(store.runtime.get("shell").id) == sessions  # nothing started


def test_panel_terminal_button_and_container_terminal(store: Store) -> None:
    from kernelext.widgets import ContainerPanel

    ctr = store.runtime.run("busybox", ["sh"], name="paneled", tty=True, stdin=True)
    panel = ContainerPanel(ctr)
    try:
        assert panel.header.tty
        panel._on_message(panel.header, {"type": "terminal"}, [])  # the button
        term = panel.children[1]
        assert isinstance(term, Terminal) and term.live and panel.children[2] is panel.output
        panel._on_message(panel.header, {"type": "terminal"}, [])
        assert panel.children[1] is term  # a live one is kept
        opened(term)
        assert typed_and_seen(term, "echo panel-$((4*4))\r", r"panel-16")
        other = opened(ctr.terminal(detach_keys="ctrl-y"))  # from Python, beside the panel's
        assert other.detach_keys == "ctrl-y"
        assert typed_and_seen(other, "echo both-$((5*5))\r", r"both-25")
        assert wait_until(lambda: "both-25" in screen(term))  # both views see the one TTY
        other.type("\x19")
        assert wait_until(lambda: other.status == "detached")
    finally:
        panel.close()
    assert term.status == "detached" and ctr.reload().status is ContainerStatus.RUNNING

    plain = store.runtime.run("busybox", ["sleep", "1000"], name="plain")
    panel = ContainerPanel(plain)
    try:
        assert not panel.header.tty
        panel._on_message(panel.header, {"type": "terminal"}, [])
        assert panel.header.message == "terminal failed: container plain has no TTY: attach streams its output instead"
        assert not any(isinstance(c, Terminal) for c in panel.children)
    finally:
        panel.close()


def test_plain_ipython_on_a_terminal_attaches_it(store: Store) -> None:
    """No widgets in plain IPython: ``-it`` there uses IPython's own terminal, as the CLI does."""
    import os
    import pty
    import select
    import subprocess
    import sys

    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="ipy")
    master, slave = pty.openpty()
    env = dict(os.environ, KERNELEXT_ROOT=str(store.runtime.opts.root),
               KERNELEXT_RUNROOT=str(store.runtime.opts.runroot), TERM="dumb")
    proc = subprocess.Popen([sys.executable, "-m", "IPython", "--no-banner", "--no-confirm-exit", "--colors=NoColor",
                             "--simple-prompt"], stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    seen = bytearray()

    def until(needle: bytes, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while needle not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen.extend(os.read(master, 65536))
                except OSError:
                    break
        return needle in seen

    try:
        assert until(b"In [1]")
        os.write(master, b"%load_ext kernelext\r")
        assert until(b"In [2]")
        os.write(master, b"%container exec -it ipy sh\r")
        assert until(b"/ # ")
        os.write(master, b"tty; echo in-$((7*6)); exit 4\r")
        assert until(b"In [3]")
        os.write(master, b"print('code', _exit_code)\r")
        assert until(b"code 4"), seen.decode(errors="replace")[-500:]
        assert b"/dev/pts/" in seen and b"in-42" in seen
        assert ctr.reload().status is ContainerStatus.RUNNING
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
