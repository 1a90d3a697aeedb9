"""The lifecycle state machine on a fake OCI runtime (tests/fakeruntime.py): fast, no runc or conmon.

These complement the integration tests (test_lifecycle.py and others), which prove the same rules on real
runc and conmon; here each rule is checked in milliseconds, including what the core asks of the runtime.
"""

from __future__ import annotations

import ast
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

import kernelext.core
from kernelext.core.runtime import Runtime
from kernelext.core.state import ALLOWED_FROM, ContainerStatus
from kernelext.errors import ContainerStateError, NoSuchContainerError, PermissionRequiredError, RuntimeFailure

from fakeruntime import FakeRuntime

S = ContainerStatus


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[Runtime, FakeRuntime]]:
    rt = Runtime(tmp_path / "root", tmp_path / "run")
    oci = FakeRuntime()
    rt.oci = oci
    try:
        yield rt, oci
    finally:
        for ctr in rt.list():
            ctr.remove(force=True)
        oci.close()
        rt.close()
        if rt.namespace.rootless:
            rt.namespace.stop()  # the store's pause process: a user keeps it, a test must not
    assert oci.containers == {}, "the core left containers in the runtime"


def _ops(oci: FakeRuntime, ctr_id: str) -> list[str]:
    return [f"{op} {detail}".strip() for op, cid, detail in oci.calls if cid == ctr_id]


def test_run_stop_remove_calls_the_runtime_in_libpod_order(fake: tuple[Runtime, FakeRuntime]) -> None:
    rt, oci = fake
    ctr = rt.create("busybox", ["sleep", "1000"], network="host")
    assert ctr.status is S.CONFIGURED and not oci.containers  # configured: the runtime knows nothing yet
    ctr.start()
    assert ctr.state.status is S.RUNNING and oci.containers[ctr.id].status == "running"
    ctr.stop(timeout=3)
    assert ctr.state.status in (S.STOPPED, S.EXITED) and ctr.exit_code == 128 + signal.SIGTERM
    ctr.remove()
    assert _ops(oci, ctr.id)[:4] == ["create", "start", "stop SIGTERM 3", "kill SIGTERM"]
    assert "delete" in _ops(oci, ctr.id)
    with pytest.raises(NoSuchContainerError):
        rt.get(ctr.id)


def test_stop_escalates_to_sigkill_when_the_signal_is_ignored(fake: tuple[Runtime, FakeRuntime],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    rt, oci = fake
    oci.ignored.add(signal.SIGTERM)
    ctr = rt.run("busybox", ["sleep", "1000"], network="host")
    ctr.stop(timeout=1)
    assert ctr.exit_code == 128 + signal.SIGKILL
    assert _ops(oci, ctr.id)[2:5] == ["stop SIGTERM 1", "kill SIGTERM", "kill SIGKILL"]
    assert "failed to stop container" in caplog.text and "resorting to SIGKILL" in caplog.text


def test_stop_timeout_zero_kills_at_once(fake: tuple[Runtime, FakeRuntime]) -> None:
    rt, oci = fake
    ctr = rt.run("busybox", ["sleep", "1000"], network="host", stop_timeout=0)
    ctr.stop()  # None: the container's own stop timeout
    assert ctr.exit_code == 128 + signal.SIGKILL
    assert "kill SIGTERM" not in _ops(oci, ctr.id)


def test_container_stop_signal_is_what_the_runtime_gets(fake: tuple[Runtime, FakeRuntime]) -> None:
    rt, oci = fake
    ctr = rt.run("busybox", ["sleep", "1000"], network="host", stop_signal="SIGINT")
    ctr.stop(timeout=2)
    assert "kill SIGINT" in _ops(oci, ctr.id) and ctr.exit_code == 128 + signal.SIGINT


def test_pause_unpause_and_what_each_state_refuses(fake: tuple[Runtime, FakeRuntime]) -> None:
    rt, oci = fake
    ctr = rt.create("busybox", ["sleep", "1000"], network="host")
    with pytest.raises(ContainerStateError):
        ctr.pause()  # created: nothing runs
    with pytest.raises(ContainerStateError):
        ctr.unpause()
    ctr.start()
    if rt.namespace.rootless:  # refused before the runtime is asked (cgroup v1 has no rootless freezer)
        with pytest.raises(PermissionRequiredError, match="can not pause containers on rootless"):
            ctr.pause()
        assert "pause" not in _ops(oci, ctr.id) and ctr.state.status is S.RUNNING
        return
    ctr.pause()
    assert ctr.state.status is S.PAUSED and oci.containers[ctr.id].status == "paused"
    with pytest.raises(ContainerStateError, match="already paused"):
        ctr.pause()
    with pytest.raises(ContainerStateError):
        ctr.exec_run(["true"])  # exec needs a running container
    ctr.unpause()
    assert ctr.state.status is S.RUNNING
    assert [op for op in _ops(oci, ctr.id) if op.endswith("pause")] == ["pause", "unpause"]


def test_exit_seen_by_any_process_makes_the_container_stopped(fake: tuple[Runtime, FakeRuntime]) -> None:
    rt, oci = fake
    ctr = rt.run("busybox", ["sh", "-c", "exit 3"], network="host")
    oci.exit(ctr.id, 3)  # what conmon reports when the process ends
    again = rt.get(ctr.name)  # a fresh object, as another process would load it
    assert again.status in (S.STOPPED, S.EXITED)
    assert again.exit_code == 3
    with pytest.raises(ContainerStateError):
        again.pause()


def test_a_failed_runtime_start_leaves_the_container_clean(fake: tuple[Runtime, FakeRuntime],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rt, oci = fake
    ctr = rt.create("busybox", ["true"], network="host")

    def refuse(ctr_id: str, *, name: str | None = None) -> None:
        raise RuntimeFailure("runc start: refused by the test", operation="start")

    monkeypatch.setattr(oci, "start_container", refuse)
    with pytest.raises(RuntimeFailure, match="refused by the test"):
        ctr.start()
    assert ctr.id not in oci.containers, "the runtime's container was not deleted after the failed start"
    assert ctr.state.status in (S.CONFIGURED, S.EXITED) and not ctr.state.runtime_mounted


def test_exec_goes_through_the_runtime(fake: tuple[Runtime, FakeRuntime]) -> None:
    rt, oci = fake
    ctr = rt.run("busybox", ["sleep", "1000"], network="host")
    result = ctr.exec_run(["echo", "hi"])
    assert result.exit_code == 0 and result.output == b"echo hi\n"
    assert "exec echo hi" in _ops(oci, ctr.id)


def test_kill_records_the_signal_and_sigkill_waits_for_the_exit(fake: tuple[Runtime, FakeRuntime]) -> None:
    rt, _oci = fake
    ctr = rt.run("busybox", ["sleep", "1000"], network="host")
    ctr.kill("SIGKILL")
    assert ctr.state.status in (S.STOPPED, S.EXITED) and ctr.exit_code == 137
    with pytest.raises(ContainerStateError):
        ctr.kill("SIGTERM")  # nothing runs any more


def test_every_state_allows_what_the_table_says_for_kill(fake: tuple[Runtime, FakeRuntime]) -> None:
    """kill is accepted from exactly the states ALLOWED_FROM lists (from each reachable one)."""
    rt, _ = fake
    exited = rt.run("busybox", ["sleep", "1000"], network="host")
    exited.kill("SIGKILL")
    exited.cleanup()
    reached = {S.CONFIGURED: rt.create("busybox", ["sleep", "1000"], network="host"),
               S.RUNNING: rt.run("busybox", ["sleep", "1000"], network="host"), S.EXITED: exited}
    assert {status: c.reload().status for status, c in reached.items()} == {s: s for s in reached}
    for status, c in reached.items():
        if status in ALLOWED_FROM["kill"]:
            c.kill("SIGKILL")
            assert c.status in (S.STOPPED, S.EXITED)
        else:
            with pytest.raises(ContainerStateError):
                c.kill("SIGKILL")


def test_the_core_builds_no_runtime_command_line() -> None:
    """Every runc and CRIU command line lives behind the seam (kernelext/oci/runtime.py): no module of the
    core imports the runc driver or launches conmon, and none spells a runc or CRIU option."""
    core = Path(kernelext.core.__file__).parent
    options = {"--criu", "--image-path", "--work-path", "--leave-running", "--tcp-established", "--tcp-close",
               "--pre-dump", "--parent-path", "--additional-gids", "--cwd"}
    for module in sorted(core.glob("*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "kernelext.oci.runc", f"{module.name} imports the runc driver"
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert (node.value.id, node.attr) != ("conmon", "launch"), f"{module.name} launches conmon"
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in options, f"{module.name} spells the runtime option {node.value}"
