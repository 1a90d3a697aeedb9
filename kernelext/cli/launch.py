"""How a ``kernelext`` command starts: in a child of the fork server, or in its own process.

CPython needs ~150 ms on these machines to import what a command uses: more
than podman needs for a whole ``run --rm``. So, like multiprocessing's
forkserver (or the client/server split of Bazel and Gradle), the command hands
its work to a server that imported kernelext once and forks one child per
command (:mod:`kernelext.cli.forkserver`). The child is an ordinary CLI
process: it gets the command's stdin, stdout and stderr, working directory,
umask, environment and arguments; the command forwards its signals to the
child and exits with the child's status.

There is one server per user and interpreter set-up (executable, package,
locale, ``PYTHONPATH``) and confinement (capabilities, ``no_new_privs``,
seccomp, namespaces, cgroup, root, LSM label: :mod:`kernelext.cli.credentials`),
listening in a private directory (``/run`` for root, else ``$XDG_RUNTIME_DIR``
or ``/tmp``; ``KERNELEXT_FORKSERVER_DIR`` elsewhere). Both ends check the
other's user ID, and the server serves only a command whose credentials, read
from the kernel, are its own (:mod:`kernelext.cli.caller`): a child never has
more privilege than its command. Whenever it cannot serve, the command runs in
its own process as before; the first command starts the server for the next ones.
``KERNELEXT_FORKSERVER=0`` turns it off.

This module runs before anything else of kernelext is imported, so it uses
only what the interpreter has loaded at start-up, plus ``_socket`` and
``_signal`` (``socket`` and ``signal`` import ``enum``: milliseconds here) and
:mod:`kernelext.cli.credentials` (``os`` only).
"""

from __future__ import annotations

import _socket
import os
import stat
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import signal as _signal  # the same functions, with type stubs
else:
    import _signal

ENV_SWITCH = "KERNELEXT_FORKSERVER"
#: Where the servers' sockets live instead of the user's default (tests keep theirs apart).
ENV_DIR = "KERNELEXT_FORKSERVER_DIR"
#: Variables that shape the interpreter itself (sys.path, the stdio encoding):
#: a server serves only commands that agree on them.
INTERPRETER_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONIOENCODING", "PYTHONUTF8", "LANG", "LC_ALL", "LC_CTYPE")
#: The signals a terminal or a supervisor sends the command: they go to the child.
FORWARDED_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGWINCH,
                     _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGCONT)
ERROR_EXIT = 125
# The wire protocol. Replies: a kind byte and a signed 4-byte value. On connecting,
# the command waits: the server checks it (kernelext.cli.caller), then answers GO
# with the number of its proof fd, or REFUSED. Only then the request: a 4-byte
# length sent with the command's stdin, stdout, stderr, working directory and
# the server's proof fd reopened (/proc/<server>/fd/<number>) as SCM_RIGHTS,
# then NUL-separated fields: version, umask, argument count, the arguments, the
# environment. Then STARTED with the child's PID, then EXITED with its wait
# status (the command answers DONE); or REFUSED, and nothing ran.
VERSION = b"kx-forkserver-3"
PASSED_FDS = 5
INT_BYTES = 4
GO, STARTED, EXITED, REFUSED = b"G", b"P", b"X", b"R"
#: The command's last word, after EXITED: it ended normally, so its child may finish its housekeeping
#: (a connection closed without it means the command was killed, and its child is killed too).
DONE = b"D"

#: A command with one of these runs in its own process: ``--preserve-fds`` hands the caller's descriptors
#: 3.. to the container, and a fork server's child gets only the command's stdio (a prefix: argparse takes
#: abbreviations, and ``--pre`` is already unique; a container's argument that matches costs only speed).
IN_PROCESS_FLAGS = ("--pre",)

_BOOT = ("import sys\n"
         "sys.path[0] = sys.argv[1]\n"  # this package, not the directory the command ran in
         "from kernelext.cli.forkserver import serve\n"
         "serve(sys.argv[2])\n")


def run_command(argv: list[str]) -> int | None:
    """Run ``argv`` in a child of the fork server: its exit code, or None when it must run in this process."""
    if os.environ.get(ENV_SWITCH) == "0" or any(arg.startswith(IN_PROCESS_FLAGS) for arg in argv):
        return None
    address = server_address()
    if address is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(address)
        except OSError:
            _start_server(address)
            return None
        server, uid, _ = peer_credentials(sock)
        if uid != os.getuid():
            return None
        return _delegate(sock, server, argv)
    finally:
        sock.close()


def package_parent() -> str:
    """The directory this kernelext package is imported from."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def server_address() -> str | None:
    """The server's socket for this user, interpreter set-up and confinement, in a private directory; None if
    unsafe."""
    import binascii  # built in: no file to load

    from kernelext.cli import credentials

    uid = os.getuid()
    base = "/run" if uid == 0 else os.environ.get("XDG_RUNTIME_DIR", "")
    if not base or not os.access(base, os.W_OK):
        base = "/tmp"
    directory = os.environ.get(ENV_DIR) or os.path.join(base, f"kernelext-forkserver-{uid}")
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        st = os.lstat(directory)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        return None  # someone else's, or open to others: never hand our terminal to it
    ident = "\0".join([sys.executable, package_parent(), *(os.environ.get(k, "") for k in INTERPRETER_ENV)])
    # A differently confined command gets a server of its own (one the server would refuse, anyway).
    crcs = (binascii.crc32(os.fsencode(ident)), binascii.crc32(credentials.fingerprint()))
    return os.path.join(directory, "{:08x}-{:08x}.sock".format(*crcs))


def peer_credentials(sock: _socket.socket) -> tuple[int, int, int]:
    """The peer's PID, UID and GID when it connected (SO_PEERCRED: struct ucred)."""
    cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 3 * INT_BYTES)
    return tuple(int.from_bytes(cred[i:i + INT_BYTES], sys.byteorder)  # type: ignore[return-value]
                 for i in range(0, 3 * INT_BYTES, INT_BYTES))


def receive_reply(sock: _socket.socket) -> tuple[bytes, int] | None:
    """One reply: its kind and value; None at the end of the stream."""
    data = b""
    while len(data) < 1 + INT_BYTES:
        chunk = sock.recv(1 + INT_BYTES - len(data))
        if not chunk:
            return None
        data += chunk
    return data[:1], int.from_bytes(data[1:], "big", signed=True)


def reply(kind: bytes, value: int) -> bytes:
    return kind + value.to_bytes(INT_BYTES, "big", signed=True)


def _start_server(address: str) -> None:
    """Start a detached server for the next commands (this one runs here meanwhile)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                os.chdir("/")
                os.execv(sys.executable, [sys.executable, "-c", _BOOT, package_parent(), address])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def encode_request(argv: list[str]) -> bytes:
    umask = os.umask(0)
    os.umask(umask)
    env = [key + b"=" + value for key, value in os.environb.items()]
    args = [os.fsencode(arg) for arg in argv]
    return b"\0".join([VERSION, b"%d" % umask, b"%d" % len(args), *args, *env])


def _delegate(sock: _socket.socket, server: int, argv: list[str]) -> int | None:
    opened = []
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:  # a closed stdio stream: the child gets /dev/null there
            opened.append(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
            fds.append(opened[-1])
    try:
        try:
            opened.append(os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError:
            return None
        fds.append(opened[-1])
        payload = encode_request(argv)  # prepared while the server checks this process, sent once it says GO
        go = receive_reply(sock)
        if go is None or go[0] != GO:
            return None  # refused (other credentials, or its modules changed on disk) or gone: nothing ran
        try:
            opened.append(os.open(f"/proc/{server}/fd/{go[1]}", os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            return None  # not allowed to look into the server: it would refuse
        fds.append(opened[-1])
        rights = b"".join(fd.to_bytes(INT_BYTES, sys.byteorder) for fd in fds)
        sock.sendmsg([len(payload).to_bytes(INT_BYTES, "big")], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        sock.sendall(payload)
        started = receive_reply(sock)
    except OSError:
        return None
    finally:
        for fd in opened:
            os.close(fd)
    if started is not None and started[0] == EXITED:
        # The child reports its own exit, and a quick command's report can overtake the server's STARTED:
        # it ran, and must not run again here.
        return _finish(sock, started[1])
    if started is None or started[0] != STARTED:
        return None  # refused, or gone: nothing ran
    return _wait_for_child(sock, started[1])


def _wait_for_child(sock: _socket.socket, child: int) -> int:
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED_SIGNALS:
        if _signal.getsignal(signum) != _signal.SIG_IGN:  # ignored by the command: ignored for the child too
            _signal.signal(signum, forward)
    try:
        exited = receive_reply(sock)
    except OSError:
        exited = None
    if exited is None or exited[0] != EXITED:
        sys.stderr.write("Error: the kernelext fork server ended while running the command\n")
        return ERROR_EXIT
    return _finish(sock, exited[1])


def _finish(sock: _socket.socket, status: int) -> int:
    """Tell the server the command ended normally; exit as its child did."""
    try:
        sock.sendall(DONE)
    except OSError:
        pass
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # killed by a signal: end the same way, so that the shell sees it
        if -code != _signal.SIGKILL:  # SIGKILL's action cannot be set (nor needs to be)
            _signal.signal(-code, _signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code
