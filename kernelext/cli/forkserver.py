"""The fork server behind the ``kernelext`` command (the client half and the protocol: :mod:`kernelext.cli.launch`).

It imports kernelext once, then forks a child per command; the child becomes
the command (its stdio, directory, umask, environment, arguments) and runs it
as :func:`kernelext.cli.main` would in a process of its own.

It holds no container state: containers never depend on it, killing it
changes nothing but speed, and it exits after ``IDLE_TIMEOUT_S`` without work.
It serves only a command whose process has its own credentials, as the kernel
shows them (:mod:`kernelext.cli.caller`); the child adopts the command's
resource limits.
It refuses to fork from modules that changed on disk since it imported them
(an upgrade, an edit of an editable install) and exits; the next command
starts a fresh one. One server per address, held by a lock file next to it.
"""

from __future__ import annotations

import fcntl
import gc
import io
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass

from kernelext.cli import caller as peer
from kernelext.cli.launch import (
    DONE,
    ERROR_EXIT,
    EXITED,
    GO,
    INT_BYTES,
    PASSED_FDS,
    REFUSED,
    STARTED,
    VERSION,
    peer_credentials,
    reply,
)

#: How long a server waits for the next command before it exits.
IDLE_TIMEOUT_S = 600.0
#: A client that was told to go must send its request within this time.
REQUEST_TIMEOUT_S = 10.0
LISTEN_BACKLOG = 64
#: An exit code's place in a wait status, as waitpid(2) reports it.
EXIT_CODE_MASK, WAIT_STATUS_SHIFT = 0xFF, 8
#: What the server imports before it serves: every module a command may need.
PRELOAD = ("kernelext.cli.app", "kernelext.cli.commands", "kernelext.core.runtime", "kernelext.core.checkpoint",
           "kernelext.core.execution", "kernelext.core.logs",
           "kernelext.core.filecopy", "kernelext.core.stats", "kernelext.host", "hashlib", "tempfile", "tarfile",
           # the remote engine: podman-py (and requests under it) cost a tenth of a second to import
           "kernelext.domain.remote", "kernelext.domain.specgen", "podman",
           # what the CLI's handlers import when they run (not at its import, for a server-less remote command)
           "kernelext.domain.containers", "kernelext.domain.checkpoints", "kernelext.domain.checkpointinfo",
           "kernelext.cli.checkpointtree", "kernelext.core.inspection", "kernelext.storage.imagechanges")
#: Command lines parsed once before serving: argparse compiles its patterns on first use, and the
#: children find them in re's cache (parsing only: nothing runs).
WARM_UP = (["run", "-it", "--rm", "-p", "8080:80", "busybox", "true"], ["ps", "-a"], ["exec", "-t", "web", "ls"])


def serve(address: str) -> None:
    """Serve at ``address`` until idle, unless another server holds it already."""
    lock = os.open(address.removesuffix(".sock") + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return
    Server(address).run()


class Server:
    """Accepts commands on ``address`` and forks a child for each; reports each child's wait status."""

    def __init__(self, address: str) -> None:
        self.address = address
        try:
            os.unlink(address)  # a dead server's socket: the lock says nobody serves it
        except FileNotFoundError:
            pass
        # Listening before the imports: a command that comes meanwhile waits, instead of starting another server.
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(address)
        self.listener.listen(LISTEN_BACKLOG)
        for module in PRELOAD:
            __import__(module)
        from kernelext.cli.parser import parse_args

        for argv in WARM_UP:
            parse_args(argv)
        # The children's collections then skip all that was imported: no scanning, no copied pages.
        gc.freeze()
        self.stamps = module_stamps()
        self.proof = peer.AccessProof()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        #: child PID -> its pidfd and the connection of the command waiting for it
        self.children: dict[int, tuple[int, socket.socket]] = {}
        self.last_active = time.monotonic()

    def run(self) -> None:
        try:
            while True:
                timeout = None if self.children else IDLE_TIMEOUT_S - (time.monotonic() - self.last_active)
                if timeout is not None and timeout <= 0:
                    return
                for key, _ in self.selector.select(timeout):
                    if key.fileobj is self.listener:
                        if not self._accept():
                            return
                    elif isinstance(key.fileobj, int):
                        self._reap(key.data)
                    else:
                        self._command_gone(key.data)
                self.last_active = time.monotonic()
        finally:
            os.unlink(self.address)  # before the lock goes with this process: a new server may bind at once
            for pidfd, conn in self.children.values():
                os.close(pidfd)
                conn.close()  # its command reports the server's end; the child carries on
            self.listener.close()
            self.proof.close()

    def _accept(self) -> bool:
        """Start one command's child; False when this server must end (its modules changed)."""
        conn, _ = self.listener.accept()
        fds: list[int] = []
        caller: peer.Caller | None = None
        try:
            conn.settimeout(REQUEST_TIMEOUT_S)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # each message then names its sender
            if peer_credentials(conn)[1] != os.getuid():
                raise PermissionError("a command of another user")
            stale = module_stamps() != self.stamps
            if stale:
                conn.sendall(reply(REFUSED, 0))
                conn.close()
                return False
            caller = peer.examine(conn)
            try:
                peer.check(caller)
                if not peer.nothing_pending(conn):
                    raise peer.Refused("a request sent before GO: maybe by a program since replaced by exec")
            except peer.Refused:
                conn.sendall(reply(REFUSED, 0))
                raise
            conn.sendall(reply(GO, self.proof.fd))
            header, fds = self._receive_header(conn, caller.pid)
            payload = _receive_exactly(conn, int.from_bytes(header, "big"), caller.pid)
            if len(fds) != PASSED_FDS:
                raise ValueError("a request carries stdin, stdout, stderr, a directory and the proof")
            if not self.proof.shown_by(fds[4]):
                raise peer.Refused("no proof that the caller may look into the server")
            request = parse_request(payload)
            caller.check_alive()  # it sent all of the request: the PID never named another process
            caller.close()
            limits, caller = caller.limits, None
            pid = os.fork()
            if pid == 0:
                self._become_command(conn, fds, request, limits)
        except (OSError, ValueError):  # Refused is an OSError (PermissionError)
            conn.close()
            return True
        finally:
            for fd in fds:
                os.close(fd)
            if caller is not None:
                caller.close()
        conn.settimeout(None)
        pidfd = os.pidfd_open(pid)
        self.children[pid] = (pidfd, conn)
        self.selector.register(pidfd, selectors.EVENT_READ, pid)
        self.selector.register(conn, selectors.EVENT_READ, pid)
        try:
            conn.sendall(reply(STARTED, pid))
        except OSError:
            self._command_gone(pid)
        return True

    @staticmethod
    def _receive_header(conn: socket.socket, sender: int) -> tuple[bytes, list[int]]:
        """The request's length and its file descriptors, sent by the checked process ``sender``."""
        fds: list[int] = []
        try:
            header, ancillary, _, _ = conn.recvmsg(INT_BYTES, socket.CMSG_SPACE(PASSED_FDS * INT_BYTES)
                                                   + socket.CMSG_SPACE(peer.UCRED_SIZE))
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += [int.from_bytes(data[i:i + INT_BYTES], sys.byteorder)
                            for i in range(0, len(data) - INT_BYTES + 1, INT_BYTES)]
            if len(header) != INT_BYTES:
                raise ConnectionResetError("an incomplete request")
            if peer.sender(ancillary) != sender:
                raise peer.Refused("a request sent by another process than the one checked")
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return header, fds

    def _reap(self, pid: int) -> None:
        """A child ended: its command gets the wait status (the child sent its exit code itself unless killed)."""
        pidfd, conn = self.children.pop(pid)
        _, status = os.waitpid(pid, 0)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        if conn.fileno() < 0:
            return  # its command had gone already
        self.selector.unregister(conn)
        try:
            conn.sendall(reply(EXITED, status))
        except OSError:
            pass
        conn.close()

    def _command_gone(self, pid: int) -> None:
        """The command ended: normally (DONE; its child may still be tidying up), or killed before its
        child ended, which then ends too, as the command itself would have."""
        if pid not in self.children or self.children[pid][1].fileno() < 0:
            return  # reaped or handled in this same round of events
        _, conn = self.children[pid]
        try:
            finished = conn.recv(len(DONE)) == DONE
        except OSError:
            finished = False
        self.selector.unregister(conn)
        conn.close()
        if not finished:
            os.kill(pid, signal.SIGKILL)

    def _become_command(self, conn: socket.socket, fds: list[int], request: Request,
                        limits: dict[int, tuple[int, int]]) -> None:
        """In the child: take the command's stdio, directory, umask and environment, run it, report, exit.

        The child reports its exit code itself, as soon as it is final (see :func:`kernelext.cli.app.main`):
        a command outlives a server that is killed meanwhile, and need not wait for the store's housekeeping.
        """
        reported = False

        def report(code: int) -> None:
            nonlocal reported
            if reported:
                return
            reported = True
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            try:
                conn.sendall(reply(EXITED, (code & EXIT_CODE_MASK) << WAIT_STATUS_SHIFT))
            except OSError:
                pass

        code = ERROR_EXIT
        try:
            self.selector.close()
            self.listener.close()
            self.proof.close()
            for pidfd, other in self.children.values():
                os.close(pidfd)
                other.close()
            conn.settimeout(None)
            for target, fd in enumerate(fds[:3]):
                os.dup2(fd, target)
            os.fchdir(fds[3])
            for fd in fds:
                os.close(fd)
            peer.adopt_limits(limits)
            os.umask(request.umask)
            os.environb.clear()
            os.environb.update(request.env)
            _reopen_stdio()
            sys.argv = ["kernelext", *request.argv]
            from kernelext.cli.app import main

            code = main(request.argv, report)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            code = 128 + signal.SIGINT
        except BaseException:  # noqa: BLE001 - reported as a process of its own would, then the child ends
            traceback.print_exc()
            code = 1
        finally:
            report(code)
            os._exit(code)


def _receive_exactly(conn: socket.socket, size: int, sender: int) -> bytes:
    """``size`` bytes, all sent by the process ``sender`` (the kernel returns one sender's bytes at a time)."""
    data = bytearray()
    while len(data) < size:
        chunk, ancillary, _, _ = conn.recvmsg(size - len(data), socket.CMSG_SPACE(peer.UCRED_SIZE))
        if not chunk:
            raise ConnectionResetError("an incomplete request")
        if peer.sender(ancillary) != sender:
            raise peer.Refused("a request sent by another process than the one checked")
        data += chunk
    return bytes(data)


@dataclass(frozen=True)
class Request:
    """A command, as :func:`kernelext.cli.launch.encode_request` sends it."""

    umask: int
    argv: list[str]
    env: dict[bytes, bytes]


def parse_request(payload: bytes) -> Request:
    version, umask, count, *rest = payload.split(b"\0")
    if version != VERSION:
        raise ValueError("another protocol version")
    n = int(count)
    if len(rest) < n:
        raise ValueError("fewer arguments than announced")
    env = dict(item.split(b"=", 1) for item in rest[n:] if b"=" in item)
    return Request(int(umask), [os.fsdecode(arg) for arg in rest[:n]], env)


def _reopen_stdio() -> None:
    """New stdio objects over fds 0-2, buffered as Python buffers them for a process of its own.

    The server's own (over /dev/null, then) stay referenced by ``sys.__stdout__``
    etc.: collecting them would close fds 0-2.
    """
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))

    def reopen(fd: int, mode: str, like: io.TextIOWrapper | None, line_buffering: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        return io.TextIOWrapper(buffered, encoding=like.encoding if like else None,
                                errors=like.errors if like else None, line_buffering=line_buffering,
                                write_through=unbuffered and mode == "w")

    sys.stdin = reopen(0, "r", sys.__stdin__, False)
    sys.stdout = reopen(1, "w", sys.__stdout__, os.isatty(1))
    sys.stderr = reopen(2, "w", sys.__stderr__, True)


def module_stamps() -> dict[str, tuple[int, int, int]]:
    """(mtime, size, inode) of the interpreter and of every loaded kernelext source file."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    loaded = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
    files = [sys.executable, *(f for f in loaded if isinstance(f, str) and f.startswith(package))]
    stamps = {}
    for path in files:
        try:
            st = os.stat(path)
            stamps[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamps[path] = (0, 0, 0)
    return stamps
