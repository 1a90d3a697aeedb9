"""The command layer (kernelext/domain): podman's rules once, on real runc + conmon, and the CLI and the
magics rendering the same reports (issue 17)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from kernelext import ContainerStatus, Runtime
from kernelext.domain import containers as domain
from kernelext.domain.filters import parse_filters
from kernelext.errors import ContainerStateError, InvalidArgumentError, NoSuchContainerError

from conftest import Store, needs_root, wait_until

S = ContainerStatus


# ------------------------------------------------------------ pure logic
@pytest.mark.parametrize(("text", "number"), [("9", 9), ("-1", 1), ("-INT", 2), ("FPE", 8), ("-SIGUSR1", 10),
                                              ("SIGUSR2", 12), ("term", 15)])
def test_signals_as_podman_parses_them(text: str, number: int) -> None:
    assert domain.parse_signal(text) == number


@pytest.mark.parametrize(("text", "message"), [
    ("0", "invalid signal: 0"), ("-0", "invalid signal: 0"), ("SIGBADSIG", "invalid signal: SIGBADSIG"),
    ("SIG", "invalid signal: SIG"), ("-", "invalid signal: "), ("%%", "invalid signal: %%"),
    ("65", "valid signals are 1 through 64"), ("-65", "valid signals are 1 through 64"),
    ("99999999", "valid signals are 1 through 64"),
])
def test_bad_signals_refused_with_podmans_message(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        domain.parse_signal(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (1.5, "1.5s"), (59, "59s"), (123.25, "2m3.25s"),
                                               (3600, "1h0m0s")])
def test_go_durations(seconds: float, text: str) -> None:
    assert domain.go_duration(seconds) == text


def test_filters_parse_and_refuse() -> None:
    assert parse_filters(["name=a", "status=exited", "name=b"]) == {"name": ["a", "b"], "status": ["exited"]}
    with pytest.raises(InvalidArgumentError, match='invalid filter "name"'):
        parse_filters(["name"])


# ------------------------------------------------------------ on runc
def test_targets_look_every_name_up_first(runtime: Runtime) -> None:
    ctr = runtime.run("busybox", ["sleep", "1000"], name="first")
    with pytest.raises(NoSuchContainerError):
        domain.stop(runtime, ["first", "nosuch"], timeout=0)
    assert ctr.reload().status is S.RUNNING  # a typo acts on nothing, as podman
    reports = domain.stop(runtime, ["nosuch", "first"], ignore=True, timeout=0)
    assert [(r.raw_input, r.error) for r in reports] == [("first", None)]
    with pytest.raises(InvalidArgumentError, match="at least one name"):
        domain.stop(runtime, [])
    with pytest.raises(InvalidArgumentError, match="^no arguments are needed with --all$"):
        domain.stop(runtime, ["first"], all=True)
    with pytest.raises(InvalidArgumentError, match="^--latest and containers cannot be used together$"):
        domain.kill(runtime, ["first"], latest=True)


def test_stop_timeout_none_is_the_containers_own(runtime: Runtime) -> None:
    runtime.run("busybox", ["sleep", "1000"], name="quick", stop_timeout=1)
    started = time.monotonic()
    [report] = domain.stop(runtime, ["quick"])
    assert report.error is None and 1.0 <= time.monotonic() - started < 5.0
    assert runtime.get("quick").exit_code == 137


@needs_root  # the freezer: rootless pause is refused (tests/test_rootless.py)
def test_carries_on_past_one_failure(runtime: Runtime) -> None:
    runtime.create("busybox", ["true"], name="never")
    runtime.run("busybox", ["sleep", "1000"], name="up")
    reports = domain.pause(runtime, ["never", "up"])
    assert isinstance(reports[0].error, ContainerStateError) and reports[1].error is None
    assert runtime.get("up").status is S.PAUSED
    # --all passes over what it cannot act on, as podman
    assert [r.id for r in domain.unpause(runtime, [], all=True)] == [runtime.get("up").id]


def test_start_all_with_filter_skips_running(runtime: Runtime) -> None:
    done = runtime.run("busybox", ["true"], name="done")
    failed = runtime.run("busybox", ["false"], name="failed")
    up = runtime.run("busybox", ["sleep", "1000"], name="up", restart_policy="always")
    done.wait(), failed.wait()
    assert [r.id for r in domain.start(runtime, [], all=True, filters={"exited": ["1"]})] == [failed.id]
    assert up.id not in [r.id for r in domain.start(runtime, [], all=True)]
    with pytest.raises(InvalidArgumentError, match="fakepolicy invalid restart policy"):
        domain.start(runtime, [done.id], filters={"restart-policy": ["fakepolicy"]})
    with pytest.raises(InvalidArgumentError, match="either start all containers"):
        domain.start(runtime, ["done"], all=True)


def test_ps_filters_and_sort(runtime: Runtime) -> None:
    runner = runtime.run("busybox", ["sleep", "1000"], name="runner")
    for name, cmd in (("stopped", "true"), ("failed", "false")):
        runtime.run("busybox", [cmd], name=name).wait()
    runtime.create("busybox", ["echo"], name="created")
    assert [c.id for c in domain.ps(runtime, filters={"name": ["runner"]})] == [runner.id]
    assert domain.ps(runtime, filters={"name": ["stopped"]}) == []
    stopped = domain.ps(runtime, filters={"status": ["stopped"]}, sort="names")
    assert [c.name for c in stopped] == ["failed", "stopped"]
    assert [c.name for c in domain.ps(runtime, filters={"status": ["exited"], "exited": ["0"]})] == ["stopped"]
    assert [c.name for c in domain.ps(runtime, all=True, sort="names")] == ["created", "failed", "runner",
                                                                            "stopped"]


def cli_lines(store: Store, *argv: str) -> tuple[int, list[str], list[str]]:
    proc = store.cli(*argv)
    return proc.returncode, proc.stdout.splitlines(), proc.stderr.splitlines()


def test_cli_exit_codes_and_output(store: Store) -> None:
    rt = store.runtime
    ctr = rt.run("busybox", ["sleep", "1000"], name="busy")
    refusal = (f"Error: cannot remove container {ctr.id} as it is running - running or paused containers cannot "
               "be removed without force: container state improper")
    assert cli_lines(store, "rm", "busy") == (2, [], [refusal])
    assert cli_lines(store, "rm", "bogus") == (1, [], [
        'Error: no container with name or ID "bogus" found: no such container'])
    assert cli_lines(store, "rm", "--force", "bogus") == (0, [], [])
    assert cli_lines(store, "kill", "-s", "0", "nosuchcontainer") == (125, [], ["Error: invalid signal: 0"])
    assert cli_lines(store, "container", "exists", "busy")[0] == 0
    assert cli_lines(store, "container", "exists", "bogus")[0] == 1
    assert cli_lines(store, "stop", "--ignore", "bogus") == (0, [], [])
    assert cli_lines(store, "--noout", "stop", "-t", "0", "busy") == (0, [], [])
    assert cli_lines(store, "start", "busy") == (0, ["busy"], [])
    assert cli_lines(store, "stop", "--all", "-t", "0") == (0, [ctr.id], [])  # podman prints IDs for --all
    rt.create("busybox", ["/no/such/command"], name="nocmd")
    assert cli_lines(store, "start", "nocmd")[0] == 125  # podman's start: 125, where run gives 127
    assert cli_lines(store, "run", "--rm", "busybox", "/no/such/command")[0] == 127
    assert cli_lines(store, "rm", "nocmd")[0] == 0
    code = cli_lines(store, "run", "--bogus=a value with spaces", "busybox")[0]
    assert code == 125 and rt.list() == [rt.get("busy")]  # not taken as an image name; nothing made
    assert cli_lines(store, "top", "busy")[0] == 125  # not running


def test_top_columns_and_logs_of_several(store: Store) -> None:
    rt = store.runtime
    one = rt.run("busybox", ["sh", "-c", "echo one; sleep 1000"], name="one")
    two = rt.run("busybox", ["sh", "-c", "sleep 0.2; echo two"], name="two", labels={"tier": "web"})
    two.wait()
    code, out, _ = cli_lines(store, "top", "one")
    assert code == 0 and out[0].split() == list(domain.TOP_COLUMNS)
    assert any(line.split()[6] == "0s" for line in out[1:])  # TIME as Go prints a duration
    assert [line.split()[:3] for line in out[1:]] == [["root", "1", "0"]]  # PIDs as the container sees them,
    # the user as the container's /etc/passwd names it (podman's top)
    code, out, _ = cli_lines(store, "exec", "-d", "-u", "65534", "one", "sleep", "1000")
    assert code == 0 and wait_until(lambda: any(line.split()[0] == "nobody" for line in cli_lines(store, "top", "one")[1][1:]))
    code, out, _ = cli_lines(store, "logs", "one", "two")
    assert code == 0 and out == [f"{one.short_id} one", f"{two.short_id} two"]
    assert cli_lines(store, "logs", "--names", "one", "two")[1] == ["one one", "two two"]
    assert cli_lines(store, "diff", "-l")[0] == 0
    code, out, _ = cli_lines(store, "events", "--stream=false", "--filter", "container=two", "--filter",
                             "event=start", "--format", "{{.Name}} {{.Status}}")
    assert out == ["two start"]
    code, out, _ = cli_lines(store, "events", "--stream=false", "--filter", "label=tier=web", "--filter",
                             "event=start", "--no-trunc=false")
    assert code == 0 and len(out) == 1 and f" container start {two.short_id} (" in out[0] and "tier=web" in out[0]


# ---------------------------------------------- the CLI and the magic agree
def magic(ip: InteractiveShell, line: str) -> tuple[int, Any]:
    """The magic's exit code and value (or the error it raised)."""
    try:
        value: Any = ip.run_line_magic("container", line)
    except Exception as exc:  # noqa: BLE001 - the failure is the result compared
        value = exc
    return ip.user_ns["_exit_code"], value


def test_cli_and_magic_agree_on_the_drift_cases(store: Store, ip: InteractiveShell) -> None:
    rt = store.runtime
    for name in ("c1", "c2"):
        rt.run("busybox", ["sleep", "1000"], name=name, stop_timeout=1)
    # stop with no names: an error in both
    assert cli_lines(store, "stop")[0] == 125 and magic(ip, "stop")[0] == 125
    # stop honours the container's own --stop-timeout in both (no magic default of 10 s)
    for front in ("cli", "magic"):
        name = "c1" if front == "cli" else "c2"
        started = time.monotonic()
        code = cli_lines(store, "stop", name)[0] if front == "cli" else magic(ip, f"stop {name}")[0]
        # 1 s and a kill, not the 10 s a magic default would give (a loaded machine adds seconds of start-up)
        assert code == 0 and time.monotonic() - started < 9.5, front
        assert rt.get(name).exit_code == 137
    # rm --ignore: the same in both
    assert cli_lines(store, "rm", "--ignore", "bogus")[0] == 0 and magic(ip, "rm --ignore bogus")[0] == 0
    # one failure does not stop the rest, in both: 'never' cannot be killed, the running one after it is
    rt.create("busybox", ["true"], name="never")
    for name in ("k1", "k2"):
        rt.run("busybox", ["sleep", "1000"], name=name)
    code, value = magic(ip, "kill never k1")
    assert code == 125 and isinstance(value, ContainerStateError) and rt.get("k1").status is not S.RUNNING
    code, out, _ = cli_lines(store, "kill", "never", "k2")
    assert code == 125 and out == ["k2"] and rt.get("k2").status is not S.RUNNING
    # rm of a running container: 2 in both; of an unknown one: 1 in both
    rt.run("busybox", ["sleep", "1000"], name="p1")
    assert cli_lines(store, "rm", "p1")[0] == 2 and magic(ip, "rm p1")[0] == 2
    assert cli_lines(store, "rm", "bogus")[0] == 1 and magic(ip, "rm bogus")[0] == 1
    # cleanup --rm removes in both
    assert cli_lines(store, "cleanup", "--rm", "c1")[0] == 0 and not rt.exists("c1")
    assert magic(ip, "cleanup --rm c2")[0] == 0 and not rt.exists("c2")


def test_magic_global_options_mean_what_they_mean_on_the_command_line(store: Store, ip: InteractiveShell,
                                                                      tmp_path: Any) -> None:
    other = Runtime(tmp_path / "other-root", tmp_path / "other-run")
    try:
        theirs = other.create("busybox", ["true"], name="elsewhere")
        code, listed = magic(ip, f"--root {other.opts.root} --runroot {other.opts.runroot} ps -a")
        assert code == 0 and [c.id for c in listed] == [theirs.id]
        assert [c.name for c in magic(ip, "ps -a")[1]] == []  # the cell's own store again
        assert magic(ip, "--noout run -d --name quiet busybox true")[1] is None and store.runtime.exists("quiet")
        theirs.remove()
    finally:
        other.close()


def test_run_start_failure_is_126(store: Store) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert store.cli("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "true").returncode == 126


def test_replace_and_info_templates(store: Store) -> None:
    first = cli_lines(store, "run", "-d", "--name", "same", "busybox", "sleep", "1000")[1][0]
    code, out, _ = cli_lines(store, "run", "-d", "--replace", "--name", "same", "busybox", "sleep", "1000")
    assert code == 0 and out[0] != first and [c.id for c in store.runtime.list()] == [out[0]]
    assert cli_lines(store, "run", "-d", "--name", "same", "busybox", "true")[0] == 125  # the name is taken
    assert cli_lines(store, "info", "--format", "{{.Host.LogDriver}} {{.Host.EventLogger}}")[1] == ["k8s-file file"]


def test_events_backend_and_label_attributes(store: Store) -> None:
    assert cli_lines(store, "--events-backend", "none", "events") == (
        125, [], ['Error: cannot read events with the "none" backend'])
    assert cli_lines(store, "--events-backend", "none", "run", "--rm", "--name", "unseen", "busybox", "true")[0] == 0
    assert cli_lines(store, "--events-backend=file", "run", "--rm", "--name", "seen", "--label", "lx=v1 2",
                     "busybox", "sh", "-c", "exit 17")[0] == 17
    code, out, _ = cli_lines(store, "events", "--stream=false", "--filter", "container=unseen", "--filter",
                             "container=seen", "--filter=status=died", "--format", "{{.Name}} {{.Attributes.lx}}")
    assert (code, out) == (0, ["seen v1 2"])


def test_kill_with_a_real_time_signal(store: Store) -> None:
    # PID 1 ignores a signal it has no handler for: the container traps it
    ctr = store.runtime.run("busybox", ["sh", "-c", "trap 'exit 7' 64; echo READY; while :; do sleep 0.1; done"],
                            name="rt")
    assert wait_until(lambda: b"READY" in b"".join(line.data for line in ctr.logs()))
    assert cli_lines(store, "kill", "-s", "-64", "rt") == (0, ["rt"], [])  # SIGRTMAX: runc takes it by number
    assert ctr.wait(timeout=10) == 7


def test_inspect_containers_and_images(store: Store) -> None:
    ctr = store.runtime.run("busybox", ["sleep", "1000"], name="looked")
    image_id = store.runtime.image("busybox").id
    code, out, err = cli_lines(store, "inspect", "--format", "{{.Id}}", "looked", "busybox", "nosuch")
    assert (code, out, err) == (125, [ctr.id, image_id], ['Error: no such object: "nosuch"'])
    assert cli_lines(store, "container", "inspect", "busybox")[0] == 125  # containers only
    assert cli_lines(store, "inspect", "-l", "--format", "{{.Name}}")[1] == ["looked"]
