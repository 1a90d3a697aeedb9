"""Finding the truth after an operation died part-way (issue #16).

Every operation that acts on runc, conmon or storage records its
:class:`~kernelext.core.state.Intent` and its process before it acts, and
clears it with its outcome. A process that takes a container's lock and finds
an intent whose process is gone (a terminal closed, Ctrl-C, SIGKILL, a kernel
restart) calls :func:`recover`, which looks at what exists — runc's own state,
conmon, the exit file — and brings the record in line with it:

* ``create`` and ``remove``: the container goes (a create never reported it;
  a remove is finished, each step being safe to repeat);
* ``init``: the launch is undone (conmon, runc's container, the network
  namespace, the mount), leaving the state it started from;
* ``restore``: a restored process is adopted, else undone like ``init``;
* ``start``, ``stop``, ``pause``, ``unpause``, ``checkpoint``: the state is
  what runc says the container is; gone, its exit is handled as any exit.

A process whose own operation failed with its intent still recorded calls
:func:`settle_failure` the same way, so that a long-lived kernel never keeps a
state that is not true.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import TYPE_CHECKING

import psutil

from kernelext.core.state import ContainerStatus, Intent
from kernelext.errors import ContainerRemovedError
from kernelext.oci.conmon import SYNC_TIMEOUT_S, find_conmon, kill_conmon
from kernelext.oci.monitor import is_alive, process_start_time

if TYPE_CHECKING:
    from kernelext.core.container import Container

log = logging.getLogger("kernelext")
S = ContainerStatus

#: runc's status words (``runc state``) and the state each means.
RUNC_STATUS = {"created": S.CREATED, "running": S.RUNNING, "paused": S.PAUSED}
#: Operations whose launch of a new conmon is undone when its outcome was never recorded.
LAUNCHES = frozenset({Intent.INIT, Intent.RESTORE})
#: How long an undone conmon may take to die before runc's container is deleted anyway.
KILL_WAIT_S = 5.0
POLL_S = 0.02


def recover(ctr: Container) -> None:
    """Bring a container whose operation was abandoned in line with what exists (the lock is held).

    Raises :class:`ContainerRemovedError` when the container went (an abandoned create or remove).
    """
    intent = ctr.state.intent
    log.info("container %s: finishing an abandoned %s", ctr.name, intent.value)
    if intent in (Intent.CREATE, Intent.REMOVE):
        ctr.state.status = S.REMOVING
        ctr._finish_remove()
        raise ContainerRemovedError(f"container {ctr.name} has been removed", container=ctr.name)
    _wait_for_runc(ctr)
    # An abandoned init is undone whatever runc says: no `runc state` process for it.
    truth = None if intent is Intent.INIT else ctr._runtime.oci.container_state(ctr.id)
    status = RUNC_STATUS.get(str(truth.get("status"))) if truth else None
    if intent is Intent.INIT or (intent in LAUNCHES and status not in (S.RUNNING, S.PAUSED)):
        _take_down(ctr)
    elif status is not None and truth is not None:
        if intent is Intent.CHECKPOINT and status is S.PAUSED:
            # Frozen by a CRIU that died mid-dump, not by the user: thawed, as a failed checkpoint leaves it.
            ctr._runtime.oci.unpause_container(ctr.id, name=ctr.name)
            status = S.RUNNING
        _adopt(ctr, intent, status, int(str(truth.get("pid", 0))))
    else:
        _gone(ctr, intent)
    ctr.state.done()
    ctr._save()
    ctr._event("sync", recovered=intent.value)


def settle_failure(ctr: Container) -> None:
    """This process's operation failed with its intent recorded: the same, but a failed remove is
    left ``removing`` for the next ``rm`` to finish rather than retried at once."""
    if ctr.state.intent is Intent.REMOVE:
        ctr.state.done()
        ctr._save()
        return
    try:
        ctr._reload()
        recover(ctr)
    except ContainerRemovedError:
        pass  # removed meanwhile by another process (a stop waits unlocked): nothing left to settle


def _wait_for_runc(ctr: Container) -> None:
    """A runc command the dead process (or its conmon) started goes on without it: let it finish, so
    that what it leaves is seen, not half of it."""
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    while (busy := ctr._runtime.oci.busy_processes(ctr.id)) and time.monotonic() < deadline:
        psutil.wait_procs(busy, timeout=max(POLL_S, min(1.0, deadline - time.monotonic())))


def undo_launch(ctr: Container) -> None:
    """A launch of this process failed part-way: once the runc commands it started are done, take it all
    down as an abandoned one is (the lock is held; the caller records the outcome)."""
    _wait_for_runc(ctr)
    _take_down(ctr)


def _conmon(ctr: Container) -> tuple[int, int] | None:
    """The conmon of the container's latest run: its PID file's (each launch removes the last run's
    files first), else the recorded one. The last run's conmon may still live, running its exit command."""
    found = find_conmon(ctr.id, ctr._runtime.opts.conmon_pid_file(ctr.id))
    st = ctr.state
    if found is None and st.conmon_pid and is_alive(st.conmon_pid, st.conmon_start_time):
        return st.conmon_pid, st.conmon_start_time
    return found


def _take_down(ctr: Container) -> None:
    """No record of the new run was made: take it all down and keep the state it started from."""
    st = ctr.state
    opts = ctr._runtime.opts
    found = _conmon(ctr)
    kill_conmon(ctr.id, opts.conmon_pid_file(ctr.id), *(found or (0, 0)))
    if found is not None:  # dead before runc's container goes: it must write no exit file for it
        deadline = time.monotonic() + KILL_WAIT_S
        while process_start_time(found[0]) == found[1] and time.monotonic() < deadline:
            time.sleep(POLL_S)
    _kill_container(ctr)
    ctr._runtime.oci.delete_container(ctr.id)
    ctr.config.cgroups.release(ctr.id)
    ctr._teardown_network()
    ctr._remove_netns()
    ctr._remove_conmon_files()
    ctr._unmount_storage()
    if st.status is S.STOPPED:
        st.status = S.EXITED  # the run before had been cleaned up for this launch
    elif st.status is S.CREATED:
        st.status = S.CONFIGURED  # a start that failed: nothing of the launch is left
    st.pid = 0
    if found is not None and st.conmon_pid == found[0]:
        st.conmon_pid = st.conmon_start_time = 0


def _kill_container(ctr: Container) -> None:
    """SIGKILL what runc made, so that `runc delete` finds it stopped (a restored process runs)."""
    try:
        ctr._runtime.oci.kill_container(ctr.id, signal.SIGKILL, all_processes=True)
    except Exception:  # noqa: BLE001, S110 - runc has no such container, or it is already stopped
        pass


def _adopt(ctr: Container, intent: Intent, status: ContainerStatus, pid: int) -> None:
    """runc has the container: the record says what runc says."""
    st = ctr.state
    found = _conmon(ctr)
    if found is not None:
        st.conmon_pid, st.conmon_start_time = found
    st.pid = pid
    st.status = status
    st.exited = False
    if intent is Intent.STOP:
        st.stopped_by_user = False  # the stop did not happen: an exit of its own may restart it
    if intent in (Intent.START, Intent.RESTORE) and status is not S.CREATED and not st.started_at:
        st.started_at = time.time()
    if intent is Intent.RESTORE:
        st.restored, st.restored_at, st.checkpointed = True, time.time(), False


def _gone(ctr: Container, intent: Intent) -> None:
    """runc no longer has a live container: an exit (or a dump) to handle as any other."""
    st = ctr.state
    if intent is Intent.CHECKPOINT:
        from kernelext.core import checkpoint

        if checkpoint.has_checkpoint(ctr):
            checkpoint.finish_stopped(ctr)
            return
    found = _conmon(ctr)
    if found is not None:
        st.conmon_pid, st.conmon_start_time = found
    if st.status in (S.CREATED, S.RUNNING, S.PAUSED, S.STOPPING, S.STOPPED) and not st.exited:
        ctr._wait_for_exit_file(KILL_WAIT_S)
        ctr._check_exit()
    if st.status in (S.CREATED, S.RUNNING, S.PAUSED, S.STOPPING):
        # No exit file and conmon alive: nothing to learn the code from; the process is gone all the same.
        st.status, st.exited, st.exit_code, st.pid = S.STOPPED, True, -1, 0
