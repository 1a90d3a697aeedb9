"""The suite again, as normal users (issue #7): run by root, through scripts/setup-rootless.sh's users.

The user with subordinate IDs runs the lifecycle, copy, magics, widget, terminal, limits, security, run options,
image and rootless tests, the grading of the labs (nbgrader, as a teacher on JupyterHub would) and every
notebook (under ``--nbval-lax``: each cell must run without error and the cells tagged
``nbval-check-output`` are compared; the host report and the checkpoint cells
differ by design, saying that root is required). The user without subordinate
IDs runs the rootless and port tests, which cover what its single-ID mapping allows.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest

from kernelext.rootless import PAUSE_PID_FILE

from conftest import CONMON_GRACE_S, ROOTLESS, wait_until

REPO = Path(__file__).resolve().parent.parent
STAGE = Path(os.environ.get("KERNELEXT_ROOTLESS_STAGE", "/var/lib/kernelext-rootless-tests"))
USER_SUBIDS = os.environ.get("KERNELEXT_TEST_USER", "kernelext-test")
USER_PLAIN = os.environ.get("KERNELEXT_TEST_USER_PLAIN", "kernelext-test-plain")
SUITE_TIMEOUT_S = 1500  # the notebooks and the grading of the labs take about 3 minutes of it
SUBIDS_TESTS = ["tests/test_rootless.py", "tests/test_lifecycle.py", "tests/test_copy.py", "tests/test_magics.py",
                "tests/test_image_commands.py", "tests/test_images.py",
                "tests/test_crash.py", "tests/test_resources.py", "tests/test_security.py", "tests/test_run_options.py",
                "tests/test_big_logs.py",
                "tests/test_widgets.py", "tests/test_terminal.py", "tests/test_ports.py", "tests/test_volumes.py", "tests/test_grading.py",
                *sorted(str(p.relative_to(REPO)) for p in (REPO / "notebooks").glob("*.ipynb"))]
PLAIN_TESTS = ["tests/test_rootless.py", "tests/test_ports.py", "tests/test_volumes.py", "tests/test_image_commands.py"]

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(ROOTLESS, reason="starts the rootless run: needs root to switch users")]


def _run_as(user: str, tests: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        pytest.fail(f"no user {user}: run scripts/setup.sh (it creates the rootless test users)")
    if not (STAGE / ".venv" / "bin" / "python").exists():
        pytest.fail(f"no {STAGE}/.venv: run scripts/setup.sh (it prepares the rootless test copy)")
    subprocess.run([str(REPO / "scripts" / "stage-checkout.sh"), str(STAGE), USER_SUBIDS], check=True)
    env = {"HOME": home, "USER": user, "LANG": "C.UTF-8", "PATH": f"{STAGE}/.venv/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
    argv = ["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
            f"{STAGE}/.venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            "--nbval-lax", "--nbval-current-env", *tests]
    return subprocess.run(argv, cwd=STAGE, capture_output=True, text=True, timeout=SUITE_TIMEOUT_S)


@pytest.mark.timeout(SUITE_TIMEOUT_S + 60)
@pytest.mark.parametrize(("user", "tests"), [(USER_SUBIDS, SUBIDS_TESTS), (USER_PLAIN, PLAIN_TESTS)],
                         ids=["subordinate-ids", "single-id"])
def test_suite_passes_as_a_normal_user(user: str, tests: list[str]) -> None:
    proc = _run_as(user, tests)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, f"rootless run as {user} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    # Nothing of the user's keeps running: no pause process, conmon or forwarder outlives its store.
    assert wait_until(lambda: not _processes_of(user), timeout=CONMON_GRACE_S), _processes_of(user)


def _processes_of(user: str) -> list[str]:
    proc = subprocess.run(["pgrep", "-a", "-u", user], capture_output=True, text=True)
    return proc.stdout.splitlines()


def _cli_as(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    home = pwd.getpwnam(user).pw_dir
    # Without the fork server: no process of the user's stays behind (the suite above checks that).
    return subprocess.run(["runuser", "-u", user, "--", "env", "-i", f"HOME={home}", "LANG=C.UTF-8",
                           "KERNELEXT_FORKSERVER=0",
                           f"PATH={STAGE}/.venv/bin:/usr/bin:/bin", f"{STAGE}/.venv/bin/python", "-m", "kernelext",
                           *argv], cwd="/", capture_output=True, text=True, timeout=120)


def test_two_users_cannot_see_or_touch_each_others_containers() -> None:
    """Each user's default store is private: the other user's CLI can neither list nor stop its containers."""
    owner, other = USER_SUBIDS, USER_PLAIN
    owner_home = Path(pwd.getpwnam(owner).pw_dir)
    store = owner_home / ".local/share/kernelext/storage"
    runroot = Path(f"/tmp/kernelext-run-{pwd.getpwnam(owner).pw_uid}")
    name = f"private-{os.getpid()}"
    started = _cli_as(owner, "run", "-d", "--name", name, "busybox", "sleep", "1000")
    assert started.returncode == 0, started.stderr
    try:
        assert name in _cli_as(owner, "ps", "--format", "{{.Names}}").stdout.split()
        assert name not in _cli_as(other, "ps", "-a", "--format", "{{.Names}}").stdout.split()
        for argv in (["--root", str(store), "--runroot", str(runroot), "ps", "-a"],
                     ["--root", str(store), "--runroot", str(runroot), "stop", name]):
            proc = _cli_as(other, *argv)
            assert proc.returncode == 125 and proc.stderr.startswith("Error: ") and len(proc.stderr.splitlines()) == 1
        for private in (store, runroot):
            assert private.stat().st_mode & 0o077 == 0 and private.stat().st_uid == pwd.getpwnam(owner).pw_uid
        assert _cli_as(owner, "inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "running"
    finally:
        assert _cli_as(owner, "rm", "-f", name).returncode == 0
        pause = runroot / PAUSE_PID_FILE  # the user keeps its pause process; the test must not
        os.kill(int(pause.read_text()), signal.SIGKILL)
        pause.unlink()
