"""The kernel's own report of an OOM kill, read from its log buffer (docs/architecture.md §15).

Why it is needed: on cgroup v2 with the systemd cgroup manager, conmon misses most OOM kills. conmon
watches the container's ``memory.events`` with inotify, but drops the watch at the first change that is
not an OOM (the ``max`` counter moves first, as the container presses on its limit); what is left is one
last read of ``memory.events`` after the container exited, and by then systemd has usually removed the
emptied scope and its cgroup with it. The kernel, though, writes one line for every OOM kill at the
moment it happens, naming the victim's cgroup::

    oom-kill:constraint=CONSTRAINT_MEMCG,...,oom_memcg=/machine.slice/libpod-<id>.scope,task_memcg=...,task=sh,pid=4242,uid=0

Reading ``/dev/kmsg`` needs CAP_SYSLOG where ``kernel.dmesg_restrict`` is 1 (Debian's default): a
normal user gets nothing here and keeps conmon's answer.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

KMSG = Path("/dev/kmsg")
#: The summary line the OOM killer prints for each kill (Linux >= 4.19).
OOM_SUMMARY = "oom-kill:"
#: The victim's memory cgroup in that line, as the initial cgroup namespace names it.
TASK_MEMCG = "task_memcg="
#: A record is at most this long (the kernel's own limit for one /dev/kmsg read is 8 KiB minus a header).
RECORD_MAX = 8192
#: Log timestamps and CLOCK_MONOTONIC are both counted from boot, but not by exactly the same clock.
CLOCK_SLACK_S = 1.0


@dataclass(frozen=True)
class OomKill:
    """One OOM kill as the kernel reported it."""

    #: Seconds since boot when it happened (the record's timestamp).
    at: float
    cgroup: str
    task: str
    pid: int


def parse_record(record: str) -> OomKill | None:
    """The OOM kill a ``/dev/kmsg`` record reports (``PRIO,SEQ,USEC,FLAGS;MESSAGE``), or None."""
    header, sep, message = record.partition(";")
    if not sep or not message.startswith(OOM_SUMMARY):
        return None
    try:
        usec = int(header.split(",")[2])
    except (IndexError, ValueError):
        return None
    fields = dict(item.partition("=")[::2] for item in message[len(OOM_SUMMARY):].split("\n")[0].split(","))
    cgroup = fields.get(TASK_MEMCG.rstrip("="), "")
    try:
        pid = int(fields.get("pid", "0"))
    except ValueError:
        pid = 0
    return OomKill(at=usec / 1e6, cgroup=cgroup, task=fields.get("task", ""), pid=pid) if cgroup else None


def oom_kills(path: Path = KMSG) -> list[OomKill]:
    """Every OOM kill still in the kernel's log buffer; [] when it cannot be read (no CAP_SYSLOG)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return []
    found = []
    try:
        while True:
            try:
                data = os.read(fd, RECORD_MAX)
            except BlockingIOError:
                break  # the end of the buffer
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue  # records overwritten while reading: go on from the oldest left
                break
            if not data:
                break
            kill = parse_record(data.decode(errors="replace"))
            if kill is not None:
                found.append(kill)
    finally:
        os.close(fd)
    return found


def oom_killed_since(cgroup_names: tuple[str, ...], since_wall: float, path: Path = KMSG) -> bool:
    """Whether the kernel OOM-killed a process of the cgroup whose last path component is one of
    ``cgroup_names``, after ``since_wall`` (a ``time.time()``, e.g. when the container started)."""
    since_boot = time.clock_gettime(time.CLOCK_MONOTONIC) - (time.time() - since_wall) - CLOCK_SLACK_S
    return any(kill.at >= since_boot and kill.cgroup.rstrip("/").rpartition("/")[2] in cgroup_names
               for kill in oom_kills(path))
