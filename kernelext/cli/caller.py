"""The fork server's view of the process that connected: who it is, from the kernel, never from its request.

The rule: a command never runs with more privilege than its caller had. So
when a command connects, the server

1. pins the connecting process with a pidfd (``SO_PEERPIDFD``; before Linux
   6.5, ``pidfd_open`` of ``SO_PEERCRED``'s PID), reads its credentials from
   /proc (:mod:`kernelext.cli.credentials`), then checks through the pidfd that
   it still runs: a PID recycled meanwhile would have shown another process;
2. compares them with its own, and refuses on any difference;
3. only then tells the command to send its request (``GO``), with nothing sent
   before it: a request written earlier could come from a program that has
   since exec'd a setuid one (the socket inherited), which the check saw;
4. takes each part of the request only from the process it checked
   (``SCM_CREDENTIALS`` carries the sender's PID, which the kernel vouches for),
   and checks once more that it still runs when the request is complete.

The request also carries a proof: the server's :class:`AccessProof` file,
reopened by the caller through ``/proc/<server>/fd``, which the kernel allows
only a process that may ptrace-read the server (a Landlock domain, an LSM
or a user namespace that confines the caller denies it).
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import stat
import sys
from dataclasses import dataclass, field

from kernelext.cli import credentials
from kernelext.cli.launch import INT_BYTES, peer_credentials

#: getsockopt: a pidfd of the peer as it connected (Linux >= 6.5; the socket module has no name for it yet).
SO_PEERPIDFD = 77
#: struct ucred: pid, uid, gid.
UCRED_SIZE = 3 * INT_BYTES
#: Every resource limit once (RLIMIT_OFILE is another name for RLIMIT_NOFILE).
LIMITS = {getattr(resource, name): name for name in sorted(dir(resource), reverse=True) if name.startswith("RLIMIT_")}


class Refused(PermissionError):
    """The caller cannot be served: the command runs in its own process."""


@dataclass
class Caller:
    """The process that connected, pinned by its pidfd (:meth:`close` it)."""

    pid: int
    pidfd: int
    credentials: dict[str, bytes]
    #: resource -> (soft, hard): a child adopts them (see :func:`limits_to_raise`).
    limits: dict[int, tuple[int, int]] = field(default_factory=dict)

    def check_alive(self) -> None:
        """Raise unless the pinned process still exists: then its PID named it all along."""
        try:
            signal.pidfd_send_signal(self.pidfd, 0)
        except ProcessLookupError:
            raise Refused("the caller ended: its PID may name another process") from None

    def close(self) -> None:
        os.close(self.pidfd)


def examine(conn: socket.socket) -> Caller:
    """The connected process, as the kernel shows it now."""
    pid, _, _ = peer_credentials(conn)
    if pid <= 0:
        raise Refused("the caller's PID is not visible in this PID namespace")
    try:
        pidfd = conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:  # before Linux 6.5: the PID could be recycled between connect and here (a narrow window)
        pidfd = os.pidfd_open(pid)
    caller = Caller(pid, pidfd, {})
    try:
        caller.credentials = credentials.read(pid)
        caller.limits = {res: resource.prlimit(pid, res) for res in LIMITS}
        caller.check_alive()
    except BaseException:
        caller.close()
        raise
    return caller


def check(caller: Caller) -> None:
    """Refuse a caller whose credentials differ from this process's, or whose limits a child cannot adopt."""
    differing = credentials.refusals(credentials.read(), caller.credentials)
    if differing:
        raise Refused(f"credentials differ: {', '.join(differing)}")
    raised = limits_to_raise(caller.limits)
    if raised:
        raise Refused(f"limits above the server's: {', '.join(raised)}")


# Resource limits are adopted rather than compared: a shell's `ulimit` differs between callers that are otherwise
# alike, and would send them all to the slow path. The child sets exactly the caller's limits, only ever lowering a
# hard limit (raising one takes CAP_SYS_RESOURCE): a caller whose hard limit is above the server's is refused.
def limits_to_raise(limits: dict[int, tuple[int, int]]) -> list[str]:
    """The resources whose hard limit in ``limits`` is above this process's."""
    return [LIMITS[res] for res, (_, hard) in limits.items() if _above(hard, resource.getrlimit(res)[1])]


def adopt_limits(limits: dict[int, tuple[int, int]]) -> None:
    """In the child: the caller's limits, exactly."""
    for res, value in limits.items():
        resource.setrlimit(res, value)


def _above(limit: int, ceiling: int) -> bool:
    if ceiling == resource.RLIM_INFINITY:
        return False
    return limit == resource.RLIM_INFINITY or limit > ceiling


def nothing_pending(conn: socket.socket) -> bool:
    """No byte of a request was sent before the server said GO."""
    timeout = conn.gettimeout()
    conn.setblocking(False)  # with a timeout set, the socket module would wait for data instead
    try:
        conn.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    finally:
        conn.settimeout(timeout)
    return False  # data, or the end of the stream


def sender(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The PID the kernel attached to a received message (``SO_PASSCRED``)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= UCRED_SIZE:
            return int.from_bytes(data[:INT_BYTES], sys.byteorder)
    return None


class AccessProof:
    """A file only the server holds: a caller that reopens it through ``/proc/<server>/fd/<fd>`` may ptrace-read
    the server (proc_fd_access_allowed), which a Landlock domain or a confining LSM denies towards the outside."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("kernelext-forkserver-proof", os.MFD_CLOEXEC)
        st = os.fstat(self.fd)
        self.identity = (st.st_dev, st.st_ino)

    def shown_by(self, fd: int) -> bool:
        st = os.fstat(fd)
        return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == self.identity

    def close(self) -> None:
        os.close(self.fd)
