"""The lifecycle on real runc + conmon: the behaviours issue #2 lists, through the CLI and the API."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kernelext import (
    ContainerRunningError,
    ContainerStateError,
    ContainerStatus,
    ContainerStoppedError,
    InvalidArgumentError,
    NameInUseError,
    NoSuchContainerError,
    PermissionRequiredError,
    Runtime,
    RuntimeFailure,
)
from kernelext.domain import containers as domain
from kernelext.oci.attach import pump

from conftest import ROOTLESS, Store, needs_root, processes, wait_until

S = ContainerStatus


def collect(conn) -> tuple[bytes, bytes]:
    out, err = [], []
    pump(conn, lambda stream, data: (out if stream.name == "STDOUT" else err).append(data))
    return b"".join(out), b"".join(err)


# ----------------------------------------------------------------- CLI basics
def test_run_rm_echo_prints_and_exits_zero(store: Store) -> None:
    proc = store.cli("run", "--rm", "busybox", "echo", "hello")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "hello\n", "")
    assert store.runtime.list() == []


def test_run_returns_the_container_exit_code(store: Store) -> None:
    assert store.cli("run", "--rm", "busybox", "sh", "-c", "exit 3").returncode == 3


def test_missing_command_exits_127_with_one_line(store: Store) -> None:
    proc = store.cli("run", "--rm", "busybox", "nosuchcmd")
    assert proc.returncode == 127
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "nosuchcmd" in lines[0]
    assert "not found" in lines[0]
    assert store.runtime.list() == []


def test_missing_command_without_rm_leaves_a_created_container(store: Store) -> None:
    proc = store.cli("run", "--name", "broken", "busybox", "nosuchcmd")
    assert proc.returncode == 127
    ctr = store.runtime.get("broken")
    assert ctr.status is S.CONFIGURED
    assert "nosuchcmd" in ctr.inspect()["State"]["Error"]


@pytest.mark.parametrize("argv", [("run", "--rm", "nosuchimage", "true"), ("stop", "nosuch"), ("inspect", "nosuch"),
                                  ("logs", "nosuch"), ("run", "--bogus-flag", "busybox")])
def test_unknown_names_and_flags_are_one_line_and_125(store: Store, argv: tuple[str, ...]) -> None:
    proc = store.cli(*argv)
    assert proc.returncode == 125
    assert proc.stderr.startswith("Error: ") and len(proc.stderr.splitlines()) <= 2
    assert proc.stdout in ("", "[]\n")  # podman's inspect prints the (empty) array too


def test_early_output_is_never_lost(store: Store) -> None:
    """A container that writes the instant it starts: the attached run shows it, 50 times in a row."""
    for i in range(50):
        ctr = store.runtime.create("busybox", ["echo", f"first-{i}"])
        out, _ = collect(ctr.attach(start=True))
        assert out == f"first-{i}\n".encode()
        assert ctr.wait() == 0
        ctr.remove()


def test_attached_cli_run_separates_stdout_and_stderr(store: Store) -> None:
    proc = store.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; echo out2")
    assert proc.stdout == "out\nout2\n"
    assert proc.stderr == "err\n"


def test_run_interactive_passes_stdin(store: Store) -> None:
    proc = store.cli("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z", input=b"hello stdin\n")
    assert (proc.returncode, proc.stdout) == (0, "HELLO STDIN\n")


# ---------------------------------------------------------------------- stop
def test_stop_escalates_to_sigkill_with_podman_warning(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="sleeper")
    t0 = time.monotonic()
    proc = store.cli("stop", "-t", "2", "sleeper")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0 and proc.stdout == "sleeper\n"
    assert "StopSignal SIGTERM failed to stop container sleeper in 2 seconds, resorting to SIGKILL" in proc.stderr
    assert 2.0 <= elapsed < 4.5
    ctr.reload()
    assert ctr.status is S.EXITED and ctr.exit_code == 137
    assert ctr.inspect()["State"]["ExitCode"] == 137


def test_stop_of_a_container_that_traps_term_is_immediate(store: Store) -> None:
    script = "trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done"
    ctr = store.runtime.run("busybox", ["sh", "-c", script])
    assert wait_until(lambda: b"ready" in b"".join(line.data for line in ctr.logs()))
    t0 = time.monotonic()
    ctr.stop(timeout=10)
    assert time.monotonic() - t0 < 2
    assert ctr.exit_code == 42


def test_stop_timeout_zero_kills_at_once(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"])
    t0 = time.monotonic()
    ctr.stop(timeout=0)
    assert time.monotonic() - t0 < 2
    assert ctr.exit_code == 137


def test_stop_of_stopped_container_is_refused_and_cli_idempotent(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["true"], name="quick")
    assert ctr.wait() == 0
    with pytest.raises(ContainerStoppedError, match="already stopped"):
        ctr.stop()
    assert store.cli("stop", "quick").returncode == 0


def test_inspect_answers_while_another_process_waits_in_stop(store: Store) -> None:
    store.runtime.run("busybox", ["sleep", "1000"], name="slow")
    stopper = subprocess.Popen([sys.executable, "-m", "kernelext", *store.args, "stop", "-t", "10", "slow"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: store.runtime.get("slow").status is S.STOPPING, timeout=5)
        t0 = time.monotonic()
        proc = store.cli("inspect", "--format", "{{.State.Status}}", "slow")
        assert time.monotonic() - t0 < 1.0
        assert proc.stdout.strip() == "stopping"
    finally:
        store.runtime.get("slow").kill()
        stopper.wait(timeout=30)


# ------------------------------------------------------------ restart policy
def test_rm_and_stop_of_a_container_another_command_removed_meanwhile_succeed(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="raced")
    other = store.runtime.get("raced")  # found by this "command", then removed by another one
    assert store.cli("rm", "-f", "raced").returncode == 0
    domain.remove_quietly(other, force=True)
    domain.stop_one(ctr)
    with pytest.raises(NoSuchContainerError):
        store.runtime.get("raced")


def test_stop_beside_rm_f_prints_no_removed_error(store: Store) -> None:
    store.runtime.run("busybox", ["sleep", "1000"], name="raced")  # sleep as PID 1 ignores SIGTERM
    stop = subprocess.Popen([sys.executable, "-m", "kernelext", *store.args, "stop", "-t", "20", "raced"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: store.runtime.get("raced").status is ContainerStatus.STOPPING)
    assert store.cli("rm", "-f", "raced").stdout == "raced\n"
    out, err = stop.communicate(timeout=30)
    assert (stop.returncode, out, err) == (0, "raced\n", "")


def test_on_failure_restarts_n_times_then_stays_exited(store: Store) -> None:
    proc = store.cli("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c",
                     "echo run; exit 1")
    assert proc.returncode == 0
    ctr = store.runtime.get("flaky")

    def settled() -> bool:
        ctr.reload()
        return ctr.state.restart_count == 2 and ctr.status is S.EXITED
    assert wait_until(settled, timeout=20)
    time.sleep(0.5)  # no fourth run
    ctr.reload()
    assert ctr.state.restart_count == 2 and ctr.status is S.EXITED
    assert [line.data for line in ctr.logs()] == [b"run\n"] * 3
    assert ctr.inspect()["RestartCount"] == 2
    assert store.cli("wait", "flaky").stdout == "1\n"


def test_on_failure_does_not_restart_after_success(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["true"], restart_policy="on-failure")
    assert ctr.wait() == 0
    assert wait_until(lambda: ctr.reload().status is S.EXITED)
    assert ctr.state.restart_count == 0


def test_kill_of_restart_always_container_does_not_restart_it(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], restart_policy="always")
    ctr.kill()
    assert wait_until(lambda: ctr.reload().status is S.EXITED)
    time.sleep(0.5)
    ctr.reload()
    assert ctr.status is S.EXITED and ctr.state.restart_count == 0 and ctr.exit_code == 137


def test_inspect_right_after_kill_says_exited_as_podman(store: Store) -> None:
    store.runtime.run("busybox", ["sleep", "1000"], name="killed")
    proc = store.cli("kill", "killed")
    assert (proc.returncode, proc.stdout) == (0, "killed\n"), proc.stderr
    proc = store.cli("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "killed")
    assert proc.stdout == "exited 137\n"
    store.runtime.run("busybox", ["sleep", "1000"], name="gone", auto_remove=True)
    assert store.cli("kill", "gone").returncode == 0
    assert not store.runtime.exists("gone")  # --rm: removed, as the exit command's cleanup --rm would


def test_stats_prints_numbers_for_people_and_format_the_raw_values(store: Store) -> None:
    store.runtime.run("busybox", ["sleep", "1000"], name="sized")
    head, row = store.cli("stats", "--no-stream").stdout.splitlines()
    assert head.split()[:3] == ["ID", "NAME", "CPU"]
    assert re.search(r" \d+\.\d\d% +[\d.]+(B|kB|MB) / [\d.]+(MB|GB|TB) +\d+\.\d\d% +1$", row), row
    raw = store.cli("stats", "--no-stream", "--format", "{{.CPU}} {{.MemLimit}}").stdout.split()
    assert float(raw[0]) >= 0 and int(raw[1]) < 2 ** 62


def test_always_restarts_after_an_exit_the_runtime_observed(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", "sleep 0.2; exit 0"], restart_policy="always")
    assert wait_until(lambda: ctr.reload().state.restart_count >= 2, timeout=20)
    ctr.stop(timeout=0)
    count = ctr.reload().state.restart_count
    time.sleep(0.6)
    assert ctr.reload().state.restart_count == count


# ------------------------------------------------------------ conmon failure
def test_conmon_killed_is_detected_on_next_sync(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="orphan")
    container_pid = ctr.state.pid
    os.kill(ctr.state.conmon_pid, signal.SIGKILL)
    proc = store.cli("inspect", "orphan")
    state = json.loads(proc.stdout)[0]["State"]
    assert state["Status"] == "exited"
    assert state["ExitCode"] == -1
    assert "conmon died" in state["Error"]
    assert wait_until(lambda: not os.path.exists(f"/proc/{container_pid}/stat") or
                      open(f"/proc/{container_pid}/stat").read().split(")")[1].split()[0] == "Z")
    assert store.cli("rm", "orphan").returncode == 0


# --------------------------------------------------------------- pause, wait
def _own_writable_cgroup(pid: int, ctr_id: str) -> bool:
    """The host's fact that decides rootless pause: cgroup v2, and the container's process in a cgroup
    named for it (its systemd scope) whose freezer this user may write."""
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return False
    unified = [line.split(":", 2)[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
               if line.startswith("0::")]
    path = Path("/sys/fs/cgroup") / unified[0].lstrip("/")
    return ctr_id in path.name and os.access(path / "cgroup.freeze", os.W_OK)


def test_pause_freezes_and_unpause_resumes_output(store: Store) -> None:
    """As root, and as a normal user where the container has a writable cgroup of its own (v2 with a
    delegated systemd scope); elsewhere (rootless on v1) podman's refusal, the same in the panel."""
    ctr = store.runtime.run("busybox", ["sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done"])
    assert wait_until(lambda: len(list(ctr.logs())) >= 3)
    works = not ROOTLESS or _own_writable_cgroup(ctr.state.pid, ctr.id)
    assert ("pause" in ctr.allowed_actions()) is works  # what the panel enables
    if not works:
        proc = store.cli("pause", ctr.name)
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        refusal = "cannot pause without using Cgroups: this container does not have a cgroup" if v2 else \
            "can not pause containers on rootless containers with cgroup V1"
        assert (proc.returncode, proc.stderr) == (125, f"Error: {refusal}\n")
        with pytest.raises(PermissionRequiredError, match="pause"):
            ctr.pause()
        assert ctr.status is S.RUNNING
        return
    ctr.pause()
    assert ctr.status is S.PAUSED
    assert ctr.allowed_actions() == ["kill", "unpause"]
    time.sleep(0.2)
    frozen = len(list(ctr.logs()))
    time.sleep(0.5)
    assert len(list(ctr.logs())) == frozen
    with pytest.raises(ContainerStateError, match="already paused"):
        ctr.pause()
    ctr.unpause()
    assert wait_until(lambda: len(list(ctr.logs())) > frozen + 3)
    numbers = [int(line.data) for line in ctr.logs()]
    assert numbers == list(range(len(numbers)))


def test_wait_conditions_as_podman(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["sh", "-c", "sleep 0.5; exit 7"], name="cond")
    starter = threading.Timer(0.3, ctr.start)
    starter.start()
    assert store.cli("wait", "--condition", "running", "cond").stdout == "-1\n"
    proc = store.cli("wait", "--condition", "exited", "--condition", "paused", "cond")
    assert proc.stdout == "7\n"
    starter.join()


def test_wait_for_can_be_cancelled_and_times_out(store: Store) -> None:
    from kernelext import WaitTimeoutError

    ctr = store.runtime.run("busybox", ["sleep", "1000"])
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(WaitTimeoutError):
        ctr.wait_for(["exited"], interval=0.05, cancel=cancel)
    assert time.monotonic() - t0 < 1.5
    with pytest.raises(WaitTimeoutError):
        ctr.wait(timeout=0.2)


def test_wait_of_never_started_container_is_zero(store: Store) -> None:
    assert store.runtime.create("busybox", ["true"]).wait() == 0


# ------------------------------------------------------------------ API
def test_state_transitions_and_refusals(store: Store) -> None:
    rt = store.runtime
    ctr = rt.create("busybox", ["sleep", "1000"], name="machine")
    assert ctr.status is S.CONFIGURED
    ctr.init()
    assert ctr.status is S.CREATED
    with pytest.raises(ContainerStateError, match="already been created"):
        ctr.init()
    ctr.start()
    assert ctr.status is S.RUNNING
    with pytest.raises(ContainerRunningError):
        ctr.start()
    with pytest.raises(ContainerStateError, match="cannot remove"):
        ctr.remove()
    ctr.stop(timeout=0)
    assert ctr.status is S.STOPPED
    with pytest.raises(ContainerStateError, match="can't pause"):
        ctr.pause()
    ctr.cleanup()
    assert ctr.status is S.EXITED
    ctr.start()
    ctr.restart(timeout=0)
    assert ctr.status is S.RUNNING
    events = [e.status for e in rt.events.read() if e.id == ctr.id]
    for expected in ("create", "init", "start", "stop", "died", "cleanup", "restart"):
        assert expected in events
    ctr.remove(force=True)
    with pytest.raises(NoSuchContainerError):
        rt.get("machine")


def test_names_are_unique_and_ids_resolve_by_prefix(store: Store) -> None:
    rt = store.runtime
    ctr = rt.create("busybox", ["true"], name="dup")
    with pytest.raises(NameInUseError):
        rt.create("busybox", ["true"], name="dup")
    assert rt.get(ctr.id[:10]) == ctr
    assert len(rt.list()) == 1


def test_exec_runs_inside_and_is_tracked(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], env=["GREETING=hi"], workdir="/tmp")
    result = ctr.exec_run(["sh", "-c", "echo $GREETING $(pwd) $(id -u); exit 5"])
    assert result.exit_code == 5 and result.output == b"hi /tmp 0\n"
    assert ctr.exec_run(["id", "-un"], user="nobody").output == b"nobody\n"
    assert ctr.exec_run(["nosuchcmd"]).exit_code == 127
    started = threading.Event()
    holder = threading.Thread(target=ctr.exec_run, args=(["sh", "-c", "echo go; sleep 1"],),
                              kwargs={"on_output": lambda s, d: started.set()})
    holder.start()
    assert started.wait(5)
    assert len(store.runtime.get(ctr.id).inspect()["ExecIDs"]) == 1  # visible from any process
    holder.join()
    assert ctr.inspect()["ExecIDs"] == []
    ctr.stop(timeout=0)
    proc = store.cli("exec", ctr.name, "echo", "x")
    assert proc.returncode == 125 and "running" in proc.stderr


def test_cli_exec_returns_the_command_exit_code(store: Store) -> None:
    store.runtime.run("busybox", ["sleep", "1000"], name="target")
    proc = store.cli("exec", "-e", "A=b", "target", "sh", "-c", "echo $A; echo e >&2; exit 9")
    assert (proc.returncode, proc.stdout, proc.stderr) == (9, "b\n", "e\n")


def test_logs_tail_since_follow_and_timestamps(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; printf partial"],
                            name="chatty")
    assert ctr.wait() == 0
    assert [line.data for line in ctr.logs()] == [b"line1\n", b"line2\n", b"line3\n", b"line4\n", b"line5\n", b"partial"]
    assert store.cli("logs", "--tail", "2", "chatty").stdout == "line5\npartial"
    stamped = store.cli("logs", "-t", "--tail", "1", "chatty").stdout
    assert stamped.endswith(" partial") and stamped[:4].isdigit()
    assert store.cli("logs", "--since", str(time.time() + 60), "chatty").stdout == ""
    follower = store.runtime.run("busybox", ["sh", "-c", "echo a; sleep 0.3; echo b"])
    assert [line.data for line in follower.logs(follow=True)] == [b"a\n", b"b\n"]


def test_inspect_document_has_podman_fields(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="inspected", restart_policy="on-failure:3")
    doc = ctr.inspect()
    state = doc["State"]
    assert state["Status"] == "running" and state["Running"] and not state["Paused"]
    assert state["Pid"] == ctr.state.pid > 0 and state["ConmonPid"] > 0
    assert state["StartedAt"].endswith("Z") and state["Checkpointed"] is False
    assert doc["Name"] == "inspected" and doc["Id"] == ctr.id and doc["RestartCount"] == 0
    assert doc["Config"]["Cmd"] == ["sleep", "1000"]
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    proc = store.cli("inspect", "--format", "{{.Name}} {{.State.Running}} {{json .Config.Cmd}}", "inspected")
    assert proc.stdout == 'inspected true ["sleep", "1000"]\n'


@pytest.mark.parametrize(("argv", "message"), [
    (("inspect", "--format", "{{.State.Status", "tpl"), "template: inspect:1: unclosed action"),
    (("inspect", "--format", "{{nosuch .Name}}", "tpl"), 'template: inspect:1: function "nosuch" not defined'),
    (("inspect", "--format", "{{.State.Nope}}", "tpl"),
     "template: inspect:1:2: executing \"inspect\" at <.State.Nope>: can't evaluate field Nope"),
    (("ps", "-a", "--format", "{{.ID}} {{"), "template: ps:1: unclosed action"),
])
def test_malformed_templates_are_errors(store: Store, argv: tuple[str, ...], message: str) -> None:
    store.runtime.create("busybox", ["true"], name="tpl")
    proc = store.cli(*argv)
    assert (proc.returncode, proc.stdout, proc.stderr) == (125, "", f"Error: {message}\n")


def test_ps_lists_states_and_formats(store: Store) -> None:
    rt = store.runtime
    rt.run("busybox", ["sleep", "1000"], name="up")
    done = rt.run("busybox", ["sh", "-c", "exit 2"], name="down")
    done.wait()
    running = store.cli("ps", "--format", "{{.Names}} {{.State}}").stdout
    assert running == "up running\n"
    everything = json.loads(store.cli("ps", "-a", "--format", "json").stdout)
    assert {(r["Names"][0], r["ExitCode"]) for r in everything} == {("up", 0), ("down", 2)}
    table = store.cli("ps", "-a").stdout.splitlines()
    assert table[0].split()[:2] == ["CONTAINER", "ID"] and len(table) == 3
    assert any("Exited (2)" in line for line in table)
    assert store.cli("ps", "-aq").stdout.split() == [c.short_id for c in rt.list()]


def test_vfs_driver_gives_each_container_a_copy_of_the_image(store: Store, tmp_path) -> None:
    """The fallback where overlayfs cannot be mounted (rootless before Linux 5.11), forced here."""
    rt = Runtime(tmp_path / "vfs-root", tmp_path / "vfs-run", storage_driver="vfs")
    try:
        ctr = rt.run("busybox", ["sh", "-c", ("rm /etc/group; echo x >> /etc/passwd; echo new > /srv/new; "
                                             "sleep 1000")], name="copied")
        assert wait_until(lambda: ctr.exec_run(["test", "-s", "/srv/new"]).exit_code == 0)
        assert [str(c) for c in ctr.diff()] == ["C /etc", "D /etc/group", "C /etc/passwd", "C /srv", "A /srv/new"]
        assert ctr.inspect()["GraphDriver"] == {"Name": "vfs", "Data": {}}
        (tmp_path / "in.txt").write_text("in\n")
        rt.copy(str(tmp_path / "in.txt"), "copied:/tmp/")
        rt.copy("copied:/srv/new", str(tmp_path))
        assert (tmp_path / "new").read_text() == "new\n" and ctr.exec_run(["cat", "/tmp/in.txt"]).output == b"in\n"
        image_rootfs = rt.images.get("busybox").lowers[0]  # its one layer
        assert not (image_rootfs / "srv" / "new").exists() and (image_rootfs / "etc" / "group").exists()
        ctr.remove(force=True)
        assert os.listdir(rt.opts.root / "overlay") == []
        with pytest.raises(InvalidArgumentError, match='^database storage graph driver "vfs" does not match our '
                                                       'storage graph driver "overlay"'):
            Runtime(tmp_path / "vfs-root", tmp_path / "vfs-run", storage_driver="overlay")
    finally:
        for ctr in rt.list():
            ctr.remove(force=True)
        rt.close()  # first: it waits for the trash, which is emptied inside the namespace
        if rt.namespace.rootless:
            rt.namespace.stop()


def test_mount_is_reference_counted(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["true"])
    first = ctr.mount()
    assert ctr.mount() == first and (first / "bin" / "busybox").exists()
    ctr.unmount()
    assert (first / "bin" / "busybox").exists()
    ctr.unmount()
    assert not (first / "bin" / "busybox").exists()
    running = store.runtime.run("busybox", ["sleep", "1000"])
    with pytest.raises(ContainerStateError, match="running or paused"):
        running.unmount()


def test_export_streams_the_merged_rootfs(store: Store, tmp_path) -> None:
    import tarfile

    ctr = store.runtime.run("busybox", ["sh", "-c", "echo data > /marker"])
    ctr.wait()
    target = tmp_path / "out.tar"
    assert store.cli("export", "-o", str(target), ctr.name).returncode == 0
    with tarfile.open(target) as tar:
        names = tar.getnames()
        assert "./marker" in names and "./bin/busybox" in names
        assert tar.extractfile("./marker").read() == b"data\n"


def test_artifacts_live_beside_the_container(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["true"])
    ctr.add_artifact("notes", b"kept")
    assert ctr.get_artifact("notes") == b"kept"
    ctr.remove_artifact("notes")
    with pytest.raises(ValueError):
        ctr.get_artifact("notes")
    with pytest.raises(ValueError):
        ctr.add_artifact("../escape", b"x")


@needs_root
def test_batch_runs_several_calls_under_one_lock(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["sleep", "1000"])

    def start_then_pause(c) -> str:
        c.start()
        c.pause()
        return c.status.value
    assert ctr.batch(start_then_pause) == "paused"
    assert ctr.reload().status is S.PAUSED
    ctr.remove(force=True)


def test_event_subscription_and_cli_events(store: Store) -> None:
    seen = []
    unsubscribe = store.runtime.events.subscribe(lambda e: seen.append(e.status))
    ctr = store.runtime.run("busybox", ["true"], name="evented")
    ctr.wait()
    unsubscribe()
    assert seen[:3] == ["create", "init", "start"] and "died" in seen
    lines = store.cli("events", "--stream=false").stdout.splitlines()
    assert any(" container start " in line and "name=evented" in line for line in lines)


def test_stats_and_top_read_the_cgroup(store: Store) -> None:
    # Some CPU first: rootless, with no cgroup of its own, usage is the processes' own (psutil).
    ctr = store.runtime.run("busybox", ["sh", "-c", ("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
                                        "sleep 1000 & sleep 1000")], name="measured")
    assert wait_until(lambda: len(ctr.top()) == 2)
    stats = ctr.stats()
    assert stats["PIDs"] == 2 and stats["MemUsage"] > 0 and stats["CPUNano"] > 0
    assert "measured" in store.cli("stats", "--no-stream").stdout
    assert "sleep 1000" in store.cli("top", "measured").stdout


def test_user_env_workdir_and_network_none(store: Store) -> None:
    proc = store.cli("run", "--rm", "-u", "nobody", "-e", "X=1", "-w", "/srv", "busybox", "sh", "-c",
                     "id -u; echo $X; pwd; hostname; ip -o link | cut -d: -f2")
    lines = proc.stdout.split()
    assert lines[:3] == ["65534", "1", "/srv"] and lines[4:] == ["lo"]


def _netns_inode(path: str) -> int:
    return os.stat(path).st_ino


def test_own_network_namespace_lives_as_long_as_a_run(store: Store) -> None:
    """As root kernelext prepares it (loopback up) and names it to runc; rootless, runc makes it."""
    ctr = store.runtime.run("busybox", ["sleep", "1000"])
    for _ in range(2):  # a new one for each run
        key = ctr.inspect()["NetworkSettings"]["SandboxKey"]
        if ROOTLESS:
            assert key == "" and ctr.netns_path is None
        else:
            assert key == str(ctr.netns_path) and _netns_inode(key) == _netns_inode(f"/proc/{ctr.state.pid}/ns/net")
        assert b"UP" in (ctr.exec_run(["ip", "-o", "link", "show", "lo"]).output or b"")
        ctr.stop(timeout=0)
        ctr.cleanup()
        assert ctr.inspect()["NetworkSettings"]["SandboxKey"] == ""
        ctr.start()


@needs_root
def test_failed_create_leaves_no_network_namespace(store: Store, tmp_path) -> None:
    broken = tmp_path / "conmon-broken"
    broken.write_text("#!/bin/sh\necho 'conmon: this build is broken' >&2\nexit 1\n")
    broken.chmod(0o755)
    with Runtime(options=dataclasses.replace(store.runtime.opts, conmon=str(broken))) as other:
        ctr = other.create("busybox", ["true"], name="unborn")
        with pytest.raises(RuntimeFailure):
            ctr.start()
        assert ctr.netns_path is not None and not ctr.netns_path.exists()
        assert ctr.reload().status is S.CONFIGURED


def test_network_host_sees_host_interfaces(store: Store) -> None:
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.count("\n")
    proc = store.cli("run", "--rm", "--network", "host", "busybox", "sh", "-c", "ip -o link | wc -l")
    assert int(proc.stdout) == host_links


def test_tty_container_and_resize(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["sh", "-c", "sleep 0.5; stty size"], tty=True)
    conn = ctr.attach(start=True)
    ctr.resize(33, 101)
    out, _ = collect(conn)
    assert b"33 101" in out
    assert ctr.wait() == 0


def test_images_import_list_and_remove_refused_in_use(store: Store, tmp_path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    subprocess.run(["cp", "/bin/busybox", str(rootfs / "bin" / "sh")], check=True)
    (rootfs / "hello.txt").write_text("imported\n")
    tarball = tmp_path / "rootfs.tar.gz"
    subprocess.run(["tar", "czf", str(tarball), "-C", str(rootfs), "."], check=True)
    proc = store.cli("image", "import", "-c", 'CMD ["/bin/sh", "-c", "cat /hello.txt"]', str(tarball), "mine")
    assert proc.returncode == 0, proc.stderr
    assert "mine" in store.cli("images").stdout
    assert store.cli("run", "--name", "user", "mine").stdout == "imported\n"
    # the same tarball with another CMD is another image, which runs its own command
    again = store.cli("image", "import", "-q", "-c", 'CMD ["/bin/sh", "-c", "echo second"]', str(tarball), "other")
    assert again.returncode == 0, again.stderr
    assert store.cli("run", "--rm", "other").stdout == "second\n"
    assert store.runtime.image("other").id != store.runtime.image("mine").id
    assert store.cli("image", "rm", "other").returncode == 0
    refused = store.cli("image", "rm", "mine")
    assert refused.returncode == 2 and "in use" in refused.stderr  # podman rmi: 2 for an image in use
    store.cli("rm", "user")
    assert store.cli("image", "rm", "mine").returncode == 0
    assert "mine" not in store.cli("images").stdout


@pytest.mark.parametrize("content", [b"not a tar\n", b"\x1f\x8b\x08 not gzip either"])
def test_import_of_a_non_tar_is_one_error_line(store: Store, tmp_path, content: bytes) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(content)
    proc = store.cli("image", "import", str(bad), "bad")
    assert proc.returncode == 125 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(f"Error: importing {bad}: "), proc.stderr
    assert "Exiting" not in proc.stderr and "not recoverable" not in proc.stderr
    assert store.runtime.list_images() == []


def test_two_runtimes_share_a_store(store: Store) -> None:
    other = Runtime(options=store.runtime.opts)
    try:
        ctr = store.runtime.run("busybox", ["sleep", "1000"], name="shared")
        seen = other.get("shared")
        seen.stop(timeout=0)
        assert ctr.reload().status in (S.STOPPED, S.EXITED)
    finally:
        other.close()


def test_info_reports_host_capabilities(store: Store) -> None:
    doc = json.loads(store.cli("info", "--format", "json").stdout)
    assert doc["features"]["runc"]["available"] and doc["features"]["conmon"]["available"]
    assert doc["host"]["rootless"] is ROOTLESS
    assert set(doc["features"]) >= {"checkpoint", "memory_tracking", "tcp_checkpoint", "overlay", "freezer"}


def test_exec_detached_runs_in_the_background_and_is_reaped(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="bg")
    proc = store.cli("exec", "-d", "-e", "MARK=set", "-w", "/tmp", "bg", "sh", "-c",
                     "sleep 1; echo $MARK > here; exit 3")
    assert proc.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", proc.stdout), proc.stderr
    session = proc.stdout.strip()
    assert store.cli("exec", "bg", "test", "-e", "/tmp/here").returncode == 1  # still sleeping: it returned at once
    assert [s for s, _, _ in ctr._exec_sessions()] == [session]
    assert wait_until(lambda: ctr.exec_run(["cat", "/tmp/here"]).output == b"set\n", timeout=10)
    assert wait_until(lambda: not ctr._exec_sessions(), timeout=5)
    assert wait_until(lambda: not processes(lambda argv: session.encode() in argv), timeout=5), "its conmon lingers"
    exit_file = ctr.bundle / "exec" / session / ctr.id  # conmon names its exit file after the container
    assert wait_until(exit_file.exists, timeout=5) and exit_file.read_text().strip() == "3"
    proc = store.cli("exec", "-d", "nosuch", "true")
    assert proc.returncode == 125 and proc.stderr.startswith("Error: ")
    engine_stop = store.cli("stop", "-t", "0", "bg")
    assert engine_stop.returncode == 0
    assert store.cli("exec", "-d", "bg", "true").stderr.startswith("Error: can only create exec sessions")
