"""run/create options for identity and files on real runc/conmon: workdir, entrypoint, init, hostname,
env files, /run/.containerenv, time zone, umask (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernelext.errors import InvalidArgumentError
from kernelext.oci.identity import read_env_file
from kernelext.oci.monitoring import MonitorOptions

from conftest import ROOTLESS, Store, wait_until


def _run(store: Store, *argv: str) -> tuple[int, str, str]:
    proc = store.cli("run", "--rm", *argv)
    return proc.returncode, proc.stdout, proc.stderr


def test_workdir_missing_is_podmans_error(store: Store) -> None:
    code, out, err = _run(store, "--workdir", "/tmp", "busybox", "pwd")
    assert (code, out.strip()) == (0, "/tmp"), err
    code, out, err = _run(store, "--name", "nowd", "--workdir", "/no/such/dir", "busybox", "pwd")
    assert code == 126
    assert err.startswith('Error: workdir "/no/such/dir" does not exist on container ') and len(err.splitlines()) == 1
    assert not store.runtime.exists("nowd")  # --rm: nothing left


def test_workdir_on_a_mount_needs_no_directory_in_the_image(store: Store, tmp_path: Path) -> None:
    """podman: a --workdir that is a mount's destination, inside one or a parent of one is runc's to make."""
    (tmp_path / "content").write_text("from the volume\n")
    code, out, err = _run(store, "--workdir", "/NotOnImage", "-v", f"{tmp_path}:/NotOnImage:Z", "busybox",
                          "cat", "content")
    assert (code, out) == (0, "from the volume\n"), err
    code, out, err = _run(store, "--workdir", "/NotOnImage2", "-v", f"{tmp_path}/content:/NotOnImage2/foo",
                          "busybox", "cat", "foo")
    assert (code, out) == (0, "from the volume\n"), err
    code, _, err = _run(store, "--workdir", "/NotOnImage3", "-v", f"{tmp_path}:/elsewhere", "busybox", "pwd")
    assert code == 126 and 'workdir "/NotOnImage3" does not exist' in err


def test_entrypoint_json_form(store: Store) -> None:
    code, out, err = _run(store, "--entrypoint", '["/bin/sh","-c"]', "busybox", "echo $0-from-json")
    assert (code, out.strip()) == (0, "/bin/sh-from-json"), err
    code, out, _ = _run(store, "--entrypoint", "/bin/echo", "busybox", "plain")
    assert (code, out.strip()) == (0, "plain")
    ctr = store.runtime.create("busybox", ["x"], entrypoint=["/bin/echo", "a"])
    assert ctr.inspect()["Config"]["Entrypoint"] == ["/bin/echo", "a"]


def test_containerenv_tells_the_container_about_itself(store: Store) -> None:
    plain = store.cli("run", "--rm", "busybox", "stat", "-c", "%s", "/run/.containerenv")
    assert (plain.returncode, plain.stdout) == (0, "0\n"), plain.stderr  # podman: empty unless privileged
    proc = store.cli("run", "--privileged", "--name", "envd", "busybox", "cat", "/run/.containerenv")
    assert proc.returncode == 0, proc.stderr
    ctr = store.runtime.get("envd")
    fields = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert fields["engine"].startswith('"kernelext-')
    assert fields["name"] == '"envd"' and fields["id"] == f'"{ctr.id}"'
    assert fields["image"] == '"busybox"' and fields["imageid"] == f'"{ctr.config.image_id}"'
    assert fields["rootless"] == ("1" if ROOTLESS else "0")


def test_init_is_pid_1_and_reaps_zombies(store: Store) -> None:
    script = ('sh -c "sleep 0.2 &"; sleep 1; echo cmd=$(tr "\\0" " " < /proc/1/cmdline); '
              'ps -o stat,comm | grep -c "^Z" || true')
    code, out, err = _run(store, "--init", "busybox", "sh", "-c", script)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("cmd=/run/podman-init -- sh -c")
    assert lines[-1] == "0"  # the orphaned sleep was reaped by catatonit
    ctr = store.runtime.create("busybox", ["true"], init=True)
    assert ctr.inspect()["HostConfig"]["Init"] is True


def test_hostname_and_add_host(store: Store) -> None:
    code, out, err = _run(store, "--hostname", "web1", "--add-host", "db:10.1.2.3", "busybox", "sh", "-c",
                          "hostname; cat /etc/hostname; grep db /etc/hosts; echo $HOSTNAME")
    assert code == 0, err
    assert out.split() == ["web1", "web1", "10.1.2.3", "db", "web1"]
    code, _, err = _run(store, "--add-host", "nocolon", "busybox", "true")
    assert code == 125 and "--add-host" in err


def test_default_env_and_unsetenv(store: Store) -> None:
    """podman's defaults TERM=xterm and container=podman under the image's env; --unsetenv, --unsetenv-all."""
    code, out, err = _run(store, "busybox", "env")
    assert code == 0, err
    assert {"TERM=xterm", "container=podman"} <= set(out.splitlines())
    code, out, err = _run(store, "--unsetenv", "TERM", "busybox", "env")
    assert code == 0 and "container=podman" in out.splitlines() and "TERM" not in out, err
    code, out, err = _run(store, "--unsetenv-all", "-e", "TERM=abc", "busybox", "/bin/busybox", "env")
    assert code == 0, err
    assert "TERM=abc" in out.splitlines() and not any(v in out for v in ("container=", "PATH="))


def test_env_file_and_env_host(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "vars.env"
    env_file.write_text("# a comment\n\nA=1\nB=two words\nHOME_FROM_HOST\n")
    code, out, err = _run(store, "--env-file", str(env_file), "-e", "A=override", "busybox", "sh", "-c",
                          'echo "$A|$B"')
    assert (code, out.strip()) == (0, "override|two words"), err
    code, _, err = _run(store, "--env-file", str(tmp_path / "missing.env"), "busybox", "true")
    assert code == 125 and "no such file or directory" in err
    monkeypatch.setenv("HOME_FROM_HOST", "yes")
    assert read_env_file(env_file)[-1] == "HOME_FROM_HOST=yes"
    code, out, err = _run(store, "--env-host", "busybox", "sh", "-c", "echo $HOME_FROM_HOST")
    assert (code, out.strip()) == (0, "yes"), err  # the CLI's environment, passed on
    code, out, err = _run(store, "busybox", "sh", "-c", "echo ${HOME_FROM_HOST:-unset}")
    assert (code, out.strip()) == (0, "unset"), err


def test_annotations_labels_tz_umask(store: Store) -> None:
    ctr = store.runtime.create("busybox", ["true"], annotations={"org.example/a": "1"}, labels={"tier": "web"},
                               tz="Europe/Paris", umask="0077")
    ctr.init()
    spec = json.loads((ctr.bundle / "config.json").read_text())
    assert spec["annotations"]["org.example/a"] == "1" and spec["annotations"]["tier"] == "web"
    doc = ctr.inspect()
    assert doc["Config"]["Annotations"] == {"org.example/a": "1"} and doc["Config"]["Umask"] == "0077"
    ctr.remove(force=True)
    code, out, err = _run(store, "--tz", "Europe/Paris", "--umask", "0077", "busybox", "sh", "-c", "date +%Z; umask")
    assert code == 0, err
    assert out.split()[0] in ("CET", "CEST") and out.split()[1] == "0077"
    code, _, err = _run(store, "--tz", "Nowhere/City", "busybox", "true")
    assert code == 125 and "unknown time zone" in err


def test_log_opt_max_size_keeps_the_log_under_it(store: Store) -> None:
    script = 'i=0; while [ $i -lt 5000 ]; do echo "line $i padding padding padding padding"; i=$((i+1)); done'
    proc = store.cli("run", "--name", "chatty", "--log-opt", "max-size=100k", "busybox", "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    ctr = store.runtime.get("chatty")
    assert ctr.log_path.stat().st_size <= 100 * 1024  # 5000 lines would be ~230 KB
    assert [line.data for line in ctr.logs(tail=1)] == [b"line 4999 padding padding padding padding\n"]
    assert ctr.inspect()["HostConfig"]["LogConfig"]["Size"] == "100kB"  # podman: decimal units, HumanSize
    bad = store.cli("run", "--rm", "--log-opt", "colour=red", "busybox", "true")
    assert bad.returncode == 125 and "invalid log option" in bad.stderr


def test_log_opt_max_size_is_podmans_decimal_size() -> None:
    """podman reads max-size with go-units' FromHumanSize (powers of 1000) and inspect prints HumanSize."""
    opts = MonitorOptions.build(log_opts=["max-size=1.089m"])
    assert opts.log_size_max == 1_089_000
    assert opts.log_config("/x/ctr.log") == {"Type": "k8s-file", "Config": None, "Path": "/x/ctr.log",
                                             "Size": "1.089MB"}
    assert MonitorOptions.build().log_config("/x")["Size"] == "0B"
    assert MonitorOptions.build(log_driver="none").log_config("/x/ctr.log")["Path"] == ""


def test_kernel_memory_is_accepted_with_podmans_warning(store: Store) -> None:
    code, out, err = _run(store, "--kernel-memory", "100", "busybox", "false")
    assert (code, out) == (1, "")
    assert err.rstrip().endswith("The --kernel-memory flag is no longer supported. This flag is a noop."), err
    assert err.startswith("WARN[") and len(err.splitlines()) == 1


def test_log_driver_none_and_passthrough(store: Store) -> None:
    proc = store.cli("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "attached")
    assert (proc.returncode, proc.stdout) == (0, "attached\n"), proc.stderr
    assert store.runtime.get("quiet").inspect()["HostConfig"]["LogConfig"]["Path"] == ""  # no file kept
    logs = store.cli("logs", "quiet")
    assert logs.returncode == 125
    assert logs.stderr.strip() == ("Error: this container is using the 'none' log driver, cannot read logs: "
                                   "this container is not logging output")
    proc = store.cli("run", "--rm", "--log-driver", "passthrough", "busybox", "sh", "-c",
                     "echo straight; echo through >&2; exit 4")
    assert (proc.returncode, proc.stdout, proc.stderr) == (4, "straight\n", "through\n")
    detached = store.cli("run", "-d", "--log-driver", "passthrough", "busybox", "true")
    assert detached.returncode == 125 and "not supported in detached mode" in detached.stderr


def test_attach_only_the_streams_asked_for(store: Store) -> None:
    proc = store.cli("run", "--rm", "-a", "stderr", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "err\n")
    proc = store.cli("run", "--rm", "-a", "STDOUT", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (proc.stdout, proc.stderr) == ("out\n", "")
    proc = store.cli("run", "--name", "quietrun", "--attach", "stdin", "busybox", "echo", "hello")
    assert (proc.returncode, proc.stdout) == (0, f"{store.runtime.get('quietrun').id}\n"), proc.stderr


def test_cidfile_conmon_pidfile_replace_timeout(store: Store, tmp_path: Path) -> None:
    cidfile, pidfile = tmp_path / "cid", tmp_path / "conmon.pid"
    proc = store.cli("run", "-d", "--name", "svc", "--cidfile", str(cidfile), "--conmon-pidfile", str(pidfile),
                     "--timeout", "1", "busybox", "sleep", "60")
    assert proc.returncode == 0, proc.stderr
    ctr = store.runtime.get("svc")
    assert cidfile.read_text() == ctr.id == proc.stdout.strip()
    assert int(pidfile.read_text()) == ctr.state.conmon_pid
    assert ctr.inspect()["ConmonPidFile"] == str(pidfile)
    assert ctr.wait(timeout=20) != 0  # conmon killed it after a second, long before the sleep ended
    again = store.cli("create", "--cidfile", str(cidfile), "busybox", "true")
    assert again.returncode == 125 and "container id file exists" in again.stderr
    taken = store.cli("create", "--name", "svc", "busybox", "true")
    assert taken.returncode == 125 and "already in use" in taken.stderr
    replaced = store.cli("create", "--name", "svc", "--replace", "busybox", "true")
    assert replaced.returncode == 0, replaced.stderr
    assert store.runtime.get("svc").id == replaced.stdout.strip() != ctr.id


def test_host_namespaces(store: Store) -> None:
    if ROOTLESS:
        pytest.skip("the host's PID namespace is out of a rootless container's reach")
    proc = store.cli("run", "--rm", "--pid", "host", "--uts", "host", "--ipc", "host", "busybox", "sh", "-c",
                     "hostname; readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc")
    assert proc.returncode == 0, proc.stderr
    name, pid_ns, ipc_ns = proc.stdout.split()
    assert name == os.uname().nodename
    assert pid_ns == os.readlink("/proc/self/ns/pid") and ipc_ns == os.readlink("/proc/self/ns/ipc")
    bad = store.cli("run", "--rm", "--uts", "host", "--hostname", "x", "busybox", "true")
    assert bad.returncode == 125 and "host UTS namespace" in bad.stderr


# --preserve-fds (podman's run and exec): descriptors 3.. of the caller reach the container's process.
NOT_AVAILABLE = ("Error: file descriptor {fd} is not available - the preserve-fds option requires that file "
                 "descriptors must be passed")


def _cli_with_fds(store: Store, fds: dict[int, Path], *argv: str) -> subprocess.CompletedProcess[str]:
    """The CLI (through the fork server as a user's command would be) with ``fds`` open at those numbers."""
    def place() -> None:
        for number, path in fds.items():
            fd = os.open(path, os.O_RDONLY)
            if fd != number:
                os.dup2(fd, number)  # inheritable: an exec'd program keeps it
                os.close(fd)

    return subprocess.run([sys.executable, "-m", "kernelext", *store.args, *argv], capture_output=True, text=True,
                          timeout=60, preexec_fn=place, close_fds=False)


def test_run_preserve_fds_passes_the_callers_descriptors(store: Store, tmp_path: Path) -> None:
    (tmp_path / "three").write_text("on fd 3\n")
    (tmp_path / "four").write_text("on fd 4\n")
    proc = _cli_with_fds(store, {3: tmp_path / "three", 4: tmp_path / "four"}, "run", "--rm", "--preserve-fds", "2",
                         "busybox", "sh", "-c", "cat <&3; cat <&4; ls -l /proc/self/fd")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["on fd 3", "on fd 4"]
    assert any(line.endswith(f"3 -> {tmp_path / 'three'}") for line in lines), lines
    assert any(line.endswith(f"4 -> {tmp_path / 'four'}") for line in lines), lines
    # Without the flag the container gets no descriptor of its caller's past stdio.
    proc = _cli_with_fds(store, {3: tmp_path / "three"}, "run", "--rm", "busybox", "sh", "-c", "cat <&3")
    assert proc.returncode != 0 and "on fd 3" not in proc.stdout


def test_preserve_fds_of_a_closed_descriptor_is_podmans_error(store: Store, tmp_path: Path) -> None:
    (tmp_path / "three").write_text("x\n")
    proc = _cli_with_fds(store, {3: tmp_path / "three"}, "run", "--rm", "--name", "nofd", "--preserve-fds=2",
                         "busybox", "true")
    assert (proc.returncode, proc.stderr) == (125, NOT_AVAILABLE.format(fd=4) + "\n")
    assert not store.runtime.exists("nofd")  # refused before anything was made
    store.runtime.run("busybox", ["sleep", "1000"], name="execfd")
    proc = _cli_with_fds(store, {}, "exec", "--preserve-fds", "1", "execfd", "true")
    assert (proc.returncode, proc.stderr) == (125, NOT_AVAILABLE.format(fd=3) + "\n")


def test_exec_preserve_fds(store: Store, tmp_path: Path) -> None:
    (tmp_path / "three").write_text("exec reads fd 3\n")
    store.runtime.run("busybox", ["sleep", "1000"], name="execfd")
    proc = _cli_with_fds(store, {3: tmp_path / "three"}, "exec", "--preserve-fds", "1", "execfd", "sh", "-c",
                         "cat <&3; readlink /proc/self/fd/3")
    assert (proc.returncode, proc.stdout) == (0, f"exec reads fd 3\n{tmp_path / 'three'}\n"), proc.stderr
    # exec -d: the session's conmon hands it on to runc exec --detach.
    proc = _cli_with_fds(store, {3: tmp_path / "three"}, "exec", "-d", "--preserve-fds", "1", "execfd", "sh", "-c",
                         "cat <&3 > /tmp/copied")
    assert proc.returncode == 0, proc.stderr
    ctr = store.runtime.get("execfd")
    assert wait_until(lambda: ctr.exec_run(["cat", "/tmp/copied"]).output == b"exec reads fd 3\n")


def test_python_run_preserve_fds(store: Store, tmp_path: Path) -> None:
    """``rt.run(..., preserve_fds=N)`` hands this process's descriptors 3..3+N-1 on."""
    (tmp_path / "three").write_text("from python\n")
    saved = os.dup(3)
    fd = os.open(tmp_path / "three", os.O_RDONLY)
    try:
        os.dup2(fd, 3)
        ctr = store.runtime.run("busybox", ["sh", "-c", "cat <&3"], preserve_fds=1)
    finally:
        os.dup2(saved, 3)
        os.close(saved)
        os.close(fd)
    assert ctr.wait(timeout=20) == 0
    assert b"".join(line.data for line in ctr.logs()) == b"from python\n"
    with pytest.raises(InvalidArgumentError, match=r"file descriptor \d+ is not available"):
        store.runtime.create("busybox", ["true"], name="toomany", preserve_fds=998)
    assert not store.runtime.exists("toomany")


def test_run_attach_stdin_without_interactive_shows_the_output_and_exit_code(store: Store) -> None:
    """``run -a stdin -a stdout`` without ``-i``: podman's run sends no input (the container has no open
    stdin) and shows the attached output and the container's exit code."""
    proc = store.cli("run", "--rm", "-a", "stdin", "-a", "stdout", "busybox", "sh", "-c", "echo hi; exit 3",
                     input=b"ignored\n")
    assert (proc.returncode, proc.stdout) == (3, "hi\n"), proc.stderr
