"""What the kernel shows of a process's privileges and confinement, to tell whether two processes have the same.

A fork server's child runs with the server's credentials, not its command's:
the server serves a command only when the kernel shows the same of both
(:func:`refusals`; the server's side: :mod:`kernelext.cli.caller`), and a
differently confined command finds a server of its own, started by a command
confined like it (:func:`fingerprint`, part of the server's address).

Not shown for another process, so not compared here:

- securebits (``prctl(PR_GET_SECUREBITS)`` reads only one's own; a value the
  command reported would be its own word). With the capability sets equal they
  only decide what an exec'd program may gain: a server running as root
  without ``SECBIT_NOROOT`` has its bounding set as permitted set (it was
  exec'd so), or is held to its permitted set by ``no_new_privs``, so a caller
  with the same sets already holds whatever an exec under the server could
  gain; for another user, a setuid-root program works as it does for any user
  without the bit;
- which seccomp filters (only their mode and number) and Landlock domains: a
  caller can only add them to itself with ``no_new_privs`` (compared) or
  ``CAP_SYS_ADMIN``; a Landlock domain also denies ptrace access to processes
  outside it, which the server makes the caller prove (:mod:`kernelext.cli.caller`).

The command's start-up imports this module: ``os`` only, one read of
``/proc/self/status``, a few stat calls.
"""

from __future__ import annotations

import os

#: /proc/PID/status lines: the identity, the capability sets, and the restrictions an exec cannot lift.
STATUS_FIELDS = (b"Uid", b"Gid", b"Groups", b"CapInh", b"CapPrm", b"CapEff", b"CapBnd", b"CapAmb", b"NoNewPrivs",
                 b"Seccomp", b"Seccomp_filters")
#: ``pid`` for the calling process itself.
SELF = 0
#: What a source reads as when the kernel would not show it (e.g. attr/current without an LSM: EINVAL).
ERROR_PREFIX = b"error "


def read(pid: int = SELF) -> dict[str, bytes]:
    """A process's credentials as the kernel shows them, by name; an unreadable one as its error."""
    proc = "/proc/self" if pid == SELF else f"/proc/{pid}"
    found: dict[str, bytes] = {}
    try:
        with open(f"{proc}/status", "rb") as f:
            for line in f:
                name, _, value = line.partition(b":")
                if name in STATUS_FIELDS:
                    found[name.decode()] = value.strip()
    except OSError as exc:
        found["status"] = _error(exc)
    try:
        kinds = os.listdir(f"{proc}/ns")  # whichever this kernel has: user, mnt, pid, net, ipc, uts, cgroup, time...
    except OSError as exc:
        found["ns"] = _error(exc)
        kinds = []
    for kind in kinds:
        found[f"ns/{kind}"] = _identity(f"{proc}/ns/{kind}")
    found["root"] = _identity(f"{proc}/root")  # a chroot
    found["cgroup"] = _contents(f"{proc}/cgroup")
    found["attr/current"] = _contents(f"{proc}/attr/current")  # the LSM label
    # Inherited by a child, lowered only with CAP_SYS_RESOURCE / CAP_SYS_NICE: a server's would be lent.
    found["oom_score_adj"] = _contents(f"{proc}/oom_score_adj")
    try:
        found["scheduling"] = b"nice %d policy %d priority %d" % (
            os.getpriority(os.PRIO_PROCESS, pid), os.sched_getscheduler(pid), os.sched_getparam(pid).sched_priority)
    except OSError as exc:
        found["scheduling"] = _error(exc)
    return found


def refusals(own: dict[str, bytes], caller: dict[str, bytes]) -> list[str]:
    """What keeps a server with ``own`` credentials from serving ``caller``: what differs, or what the kernel would
    not show of the caller alone (a source unreadable for both in the same way, e.g. no LSM, is the same)."""
    return sorted(name for name in own.keys() | caller.keys() if own.get(name) != caller.get(name))


def fingerprint() -> bytes:
    """This process's credentials in one string: commands that differ in them use different servers."""
    return b"\0".join(name.encode() + b"=" + value for name, value in sorted(read().items()))


def _error(exc: OSError) -> bytes:
    return ERROR_PREFIX + str(exc.errno).encode()


def _identity(path: str) -> bytes:
    try:
        st = os.stat(path)
    except OSError as exc:
        return _error(exc)
    return b"%d:%d" % (st.st_dev, st.st_ino)


def _contents(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        return _error(exc)
