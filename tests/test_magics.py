"""The %container magics, in a real InteractiveShell and in real kernels (nbclient / jupyter_client)."""

from __future__ import annotations

import re
import time
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from kernelext import Container, ContainerStatus, KernelextError, NoSuchContainerError
from kernelext.magics.display import ContainerList

from conftest import Store, needs_root, wait_until


def magic(ip: InteractiveShell, line: str) -> Any:
    return ip.run_line_magic("container", line)


def test_attached_run_streams_and_sets_exit_code(ip: InteractiveShell, capfd: pytest.CaptureFixture[str]) -> None:
    assert magic(ip, "run --rm --name once busybox sh -c 'echo out; echo err >&2; exit 3'") is None
    captured = capfd.readouterr()
    assert captured.out == "out\n[once exited with code 3]\n" and captured.err == "err\n"
    assert ip.user_ns["_exit_code"] == 3


def test_line_magics_return_values(ip: InteractiveShell, store: Store) -> None:
    ctr = magic(ip, "run -d --name web busybox sleep 1000")
    assert isinstance(ctr, Container) and ctr.status is ContainerStatus.RUNNING
    listed = magic(ip, "ps")
    assert isinstance(listed, ContainerList) and [c.name for c in listed] == ["web"]
    assert repr(listed).splitlines()[1].split() == ["web", "busybox", "running"]
    doc = magic(ip, "inspect web")
    assert doc["State"]["Status"] == "running" and doc["Name"] == "web"
    stopped = ip.run_line_magic("ctr", "stop -t 0 web")
    assert stopped.status is ContainerStatus.EXITED and stopped.exit_code == 137
    assert magic(ip, "wait web") == 137 and ip.user_ns["_exit_code"] == 137
    plain, _ = ip.display_formatter.format(stopped)
    assert plain["text/plain"] == "Container web (busybox): exited, exit code 137"


def test_rm_ignore_skips_a_missing_container_and_removes_the_rest(ip: InteractiveShell, store: Store,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    magic(ip, "create --name kept busybox true")
    with pytest.raises(NoSuchContainerError):  # every name is looked up first: a typo removes nothing
        magic(ip, "rm nosuch kept")
    assert store.runtime.exists("kept") and ip.user_ns["_exit_code"] == 1  # podman's rm: 1 for no such
    capsys.readouterr()
    magic(ip, "rm --ignore nosuch kept")
    assert capsys.readouterr().out == "kept\n" and not store.runtime.exists("kept")
    magic(ip, "create --name forced busybox true")
    magic(ip, "rm -f nosuch forced")  # as podman's rm --force: a missing name is no error
    assert capsys.readouterr().out == "forced\n" and not store.runtime.exists("forced")


def test_rich_html_card_and_table(ip: InteractiveShell) -> None:
    from kernelext.magics.display import container_html

    ctr = magic(ip, "run -d --name card busybox sleep 1000")
    card = container_html(ctr)
    assert "card" in card and "running" in card and ctr.short_id in card and "busybox" in card
    assert "<table>" in magic(ip, "ps")._repr_html_()


def test_python_values_expand_but_go_templates_stay(ip: InteractiveShell) -> None:
    magic(ip, "run -d --name expanded busybox sleep 1000")
    ip.user_ns["target"] = "expanded"
    ip.run_cell("status = %container inspect --format '{{.State.Status}}' $target")
    assert ip.user_ns["status"] == "running"
    ip.run_cell("status = %container inspect --format {{.Name}} {target.upper().lower()}")
    assert ip.user_ns["status"] == "expanded"


def test_bad_arguments_are_usage_errors(ip: InteractiveShell) -> None:
    for line in ("bogus", "run", "stop -t soon web", "exec"):
        with pytest.raises(UsageError) as caught:
            magic(ip, line)
        assert "\n" not in str(caught.value)


def test_operation_failures_render_as_one_line(ip: InteractiveShell) -> None:
    with pytest.raises(NoSuchContainerError) as caught:
        magic(ip, "stop nosuch")
    assert caught.value._render_traceback_() == [f"NoSuchContainerError: {caught.value}"]
    from kernelext.magics.container_magics import DebugError

    with pytest.raises(DebugError) as debugged:
        magic(ip, "--debug stop nosuch")
    assert isinstance(debugged.value.__cause__, KernelextError)


def test_help(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    magic(ip, "run --help")
    assert "--detach" in capsys.readouterr().out
    assert "%%container exec NAME" in ip.find_line_magic("container").__doc__


def test_cell_magics_exec_and_run(ip: InteractiveShell, capfd: pytest.CaptureFixture[str]) -> None:
    magic(ip, "run -d --name shell busybox sleep 1000")
    capfd.readouterr()
    ip.run_cell_magic("container", "exec shell", "echo $((6 * 7))\ncd /tmp && pwd\nexit 4\n")
    assert capfd.readouterr().out == "42\n/tmp\n[exec in shell exited with code 4]\n"
    assert ip.user_ns["_exit_code"] == 4
    ip.run_cell_magic("container", "run --name script busybox", "echo one-off\n")
    assert capfd.readouterr().out.startswith("one-off\n[script exited with code 0]")
    names = [c.name for c in magic(ip, "ps -a")]
    assert names == ["shell"]  # the one-off was removed


def test_stop_honours_the_containers_own_timeout(ip: InteractiveShell) -> None:
    magic(ip, "run -d --name slowstop --stop-timeout 1 busybox sleep 1000")
    t0 = time.monotonic()
    ctr = magic(ip, "stop slowstop")  # no magic-wide default overrides the container's --stop-timeout
    assert 1.0 <= time.monotonic() - t0 < 3.0 and ctr.exit_code == 137


def test_completion(ip: InteractiveShell) -> None:
    magic(ip, "run -d --name completeme busybox sleep 1000")

    from IPython.core.completer import provisionalcompleter

    def complete(line: str) -> set[str]:
        with provisionalcompleter():
            return {c.text for c in ip.Completer.completions(line, len(line))}
    assert {"run", "restart", "rm"} <= complete("%container r")
    assert "--detach" in complete("%container run --det")
    assert "completeme" in complete("%container stop comp")
    assert "busybox" in complete("%ctr run busy")


def test_output_beyond_the_limit_goes_to_a_bounded_area(ip: InteractiveShell, capfd: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from kernelext.widgets import LiveOutput

    finished: list[LiveOutput] = []
    original = LiveOutput.finish
    monkeypatch.setattr(LiveOutput, "finish", lambda self, footer: (finished.append(self), original(self, footer)))
    ip.run_line_magic("config", "ContainerMagics.output_lines = 50")
    magic(ip, "run --rm --name flood busybox sh -c 'seq 1 5000'")
    out = capfd.readouterr().out
    head, marker, rest = out.partition("[kernelext] more than 50 lines")
    assert head.split() == [str(i) for i in range(1, 51)] and marker
    assert "LiveOutput(title='flood')" in rest and rest.endswith("[flood exited with code 0]\n")
    [overflow] = finished
    assert overflow.lines == [("stdout", str(i)) for i in range(4951, 5001)]
    assert overflow.dropped == 5000 - 50 - 50


def test_unload_removes_magics_and_stops_threads(ip: InteractiveShell) -> None:
    import threading

    magic(ip, "run -d --name followed busybox sh -c 'while true; do echo x; sleep 0.1; done'")
    magic(ip, "logs -f followed")
    assert any(t.name.startswith("kernelext-live") for t in threading.enumerate())
    ip.run_line_magic("unload_ext", "kernelext")
    assert ip.find_line_magic("container") is None
    assert not any(t.name.startswith("kernelext-live") and t.is_alive() for t in threading.enumerate())
    ip.run_line_magic("load_ext", "kernelext")


# ------------------------------------------------------------- real kernels
def _cell_outputs(nb: Any, index: int) -> list[dict[str, Any]]:
    return [dict(o) for o in nb.cells[index].outputs]


def _text(outputs: list[dict[str, Any]]) -> str:
    return "".join(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")) for o in outputs)


@needs_root  # a checkpoint cell
def test_notebook_outputs_stay_in_their_cells(store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from nbclient import NotebookClient

    (tmp_path / "notes.txt").write_text("copied in\n")

    monkeypatch.setenv("KERNELEXT_ROOT", str(store.runtime.opts.root))
    monkeypatch.setenv("KERNELEXT_RUNROOT", str(store.runtime.opts.runroot))
    cells = [
        "%load_ext kernelext",
        "%container run -d --name ticker busybox sh -c 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done'",
        "area = %container logs -f ticker\narea",
        "print('cell four')",
        "%container run --rm --name ab busybox sh -c 'echo A; echo B >&2'",
        "import time; time.sleep(1); print('cell six')",
        "%container stop -t 0 ticker",
        "%config ContainerMagics.output_lines = 100\n%container run --rm --name flood busybox seq 1 20000",
        "%container run -d --name count busybox sh -c 'i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done'",
        "import time; time.sleep(0.5)\n%container checkpoint count",
        "ctr = %container restore count\nctr",
        ("time.sleep(0.5); nums = [int(line.data) for line in ctr.logs()]\n"
        "print(nums == list(range(len(nums))), len(nums) > 8)"),
        f"%container cp {tmp_path}/notes.txt count:/tmp/",
        "%container exec count cat /tmp/notes.txt",
        f"%container cp count:/tmp/notes.txt {tmp_path}/back.txt",
        "%container rm -f count",
        "print(sum(text.startswith('tick') for _, text in area.lines) > 10)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    assert _text(_cell_outputs(nb, 3)) == "cell four\n"
    five = _cell_outputs(nb, 4)
    assert [(o["output_type"], o.get("name"), o.get("text")) for o in five] == [
        ("stream", "stdout", "A\n"), ("stream", "stderr", "B\n"), ("stream", "stdout", "[ab exited with code 0]\n")]
    assert _text(_cell_outputs(nb, 5)) == "cell six\n"
    assert "Container ticker (busybox): running" in _text(_cell_outputs(nb, 1))
    for index in (0, 1, 3, 4, 5, 6):
        assert re.search(r"tick \d", _text(_cell_outputs(nb, index))) is None
    assert _text(_cell_outputs(nb, 2)) == "LiveOutput(title='ticker logs')"
    assert _text(_cell_outputs(nb, 16)) == "True\n"  # the live area kept following while other cells ran
    flood = _text(_cell_outputs(nb, 7))
    assert len(flood.splitlines()) < 250 and "LiveOutput(title='flood')" in flood  # stored output stays bounded
    assert flood.endswith("[flood exited with code 0]\n")
    # The checkpoint's history entry (docs/architecture.md §4, "Checkpoint history"), its text form.
    assert _text(_cell_outputs(nb, 9)) == "Checkpoint 1 of count"
    assert _text(_cell_outputs(nb, 10)) == "Container count (busybox): running, restored"
    assert _text(_cell_outputs(nb, 11)) == "True True\n"  # the counter carried on, no gap, no restart
    assert _text(_cell_outputs(nb, 13)) == "copied in\n[exec in count exited with code 0]\n"
    assert (tmp_path / "back.txt").read_text() == "copied in\n"


@pytest.mark.parametrize("script, expect_running", [
    ("echo started; exec sleep 1000", True),                      # PID 1 ignores SIGINT: we detach
    ("trap 'exit 130' INT; while true; do sleep 0.1; done", False),  # traps it: exits, code reported
])
def test_interrupt_returns_control_within_a_second(store: Store, monkeypatch: pytest.MonkeyPatch, script: str,
                                                   expect_running: bool) -> None:
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setenv("KERNELEXT_ROOT", str(store.runtime.opts.root))
    monkeypatch.setenv("KERNELEXT_RUNROOT", str(store.runtime.opts.runroot))
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        kc.execute_interactive("%load_ext kernelext", timeout=30)
        msg_id = kc.execute(f"%container run --name intr busybox sh -c \"{script}\"")
        assert wait_until(lambda: store.runtime.exists("intr") and
                         store.runtime.get("intr").status is ContainerStatus.RUNNING)
        time.sleep(0.5)
        t0 = time.monotonic()
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert time.monotonic() - t0 < 1.0
        ctr = store.runtime.get("intr")
        assert (ctr.status is ContainerStatus.RUNNING) is expect_running
        if not expect_running:
            assert ctr.wait() == 130
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_widget_subcommands_and_unload_closes_them(ip: InteractiveShell) -> None:
    import threading

    from kernelext.widgets import ContainerPanel, Dashboard, LifecycleDiagram

    magic(ip, "run -d --name widgety busybox sleep 1000")
    assert isinstance(magic(ip, "panel widgety"), ContainerPanel)
    assert isinstance(magic(ip, "diagram widgety"), LifecycleDiagram)
    assert isinstance(magic(ip, "dashboard"), Dashboard)
    with pytest.raises(UsageError):
        magic(ip, "panel")
    ip.run_line_magic("unload_ext", "kernelext")
    time.sleep(0.3)
    leftovers = [t.name for t in threading.enumerate() if t.name.startswith("kernelext-") and t.is_alive()]
    assert leftovers == []
    ip.run_line_magic("load_ext", "kernelext")


def test_files_from_cells(ip: InteractiveShell, tmp_path: Any, capfd: pytest.CaptureFixture[str]) -> None:
    magic(ip, "run -d --name files -w /srv busybox sleep 1000")
    ip.run_cell_magic("container", "write files:/srv/app.conf", "port = 8080\nname = demo\n")
    ip.run_cell_magic("container", "write files:notes.txt", "relative to the working directory\n")
    capfd.readouterr()
    ip.run_cell_magic("container", "exec files", "cat /srv/app.conf /srv/notes.txt; stat -c %U /srv/app.conf")
    assert capfd.readouterr().out == ("port = 8080\nname = demo\nrelative to the working directory\nroot\n"
                                      "[exec in files exited with code 0]\n")
    ip.user_ns["target"] = str(tmp_path)
    magic(ip, "cp files:/srv/app.conf $target/")
    assert (tmp_path / "app.conf").read_text() == "port = 8080\nname = demo\n"
    changes = magic(ip, "diff files")
    assert {"KIND": "A", "PATH": "/srv/app.conf"} in changes
    assert magic(ip, "stat files app.conf").size == len("port = 8080\nname = demo\n")
    with pytest.raises(UsageError):
        magic(ip, "cp - files:/srv")


def test_interactive_commands_say_what_works_instead(ip: InteractiveShell, store: Store) -> None:
    """``-i`` without ``-t`` has no terminal to type into; ``-it`` opens one (tests/test_terminal.py)."""
    magic(ip, "run -d --name shell busybox sleep 1000")
    for line, command in (("exec -i shell cat", "exec"), ("run -i busybox sh", "run")):
        with pytest.raises(UsageError) as caught:
            magic(ip, line)
        text = str(caught.value)
        assert "\n" not in text and "/dev/tty" not in text and f"{command} -i needs a terminal" in text
    assert [c.name for c in store.runtime.list()] == ["shell"]  # run -i made nothing


def test_numbers_for_people_and_raw_through_format(ip: InteractiveShell) -> None:
    magic(ip, "run -d --name measured busybox sleep 1000")
    [row] = magic(ip, "stats --no-stream measured")
    assert row["NAME"] == "measured" and re.fullmatch(r"\d+\.\d\d%", row["CPU %"])
    assert re.fullmatch(r"[\d.]+(B|kB|MB) / [\d.]+(MB|GB|TB)", row["MEM USAGE / LIMIT"]), row
    [raw] = magic(ip, "stats --no-stream --format '{{.MemUsage}} {{.MemLimit}}' measured")
    usage, limit = (int(v) for v in raw.split())
    assert 0 < usage < limit < 2 ** 62  # no cgroup limit reads as the host's memory, as podman's
    html = magic(ip, "ps")._repr_html_()
    assert re.search(r"Up (Less than a second|\d+ seconds?)", html) and "text-align:left" in html
    snapshot = magic(ip, "diagram --snapshot measured")
    assert snapshot.frozen and repr(snapshot) == "LifecycleDiagram(measured: running, snapshot)"
    snapshot.close()


def test_preserve_fds_is_refused_in_a_cell(ip: InteractiveShell, store: Store) -> None:
    """A kernel's descriptors 3.. are its own sockets: handing them to a container would be wrong, and
    ignoring the flag would lose them silently."""
    magic(ip, "run -d --name keeps busybox sleep 1000")
    for line in ("run --rm --preserve-fds 1 busybox true", "exec --preserve-fds=1 keeps true"):
        with pytest.raises(UsageError) as caught:
            magic(ip, line)
        assert str(caught.value).endswith("--preserve-fds is not available in a notebook")
    assert [c.name for c in store.runtime.list()] == ["keeps"]
