"""The suite again, as normal users (issue #7): run by root, through scripts/setup-rootless.sh's users.

The user with subordinate IDs runs the lifecycle, copy, magics, widget and
rootless tests and the tour notebook (under ``--nbval-lax``: the cells tagged
``nbval-check-output`` are compared; the host report and the checkpoint cells
differ by design, saying that root is required). The user without subordinate
IDs runs the rootless and port tests, which cover what its single-ID mapping allows.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest
from conftest import ROOTLESS

REPO = Path(__file__).resolve().parent.parent
STAGE = Path(os.environ.get("KERNELEXT_ROOTLESS_STAGE", "/var/lib/kernelext-rootless-tests"))
USER_SUBIDS = os.environ.get("KERNELEXT_TEST_USER", "kernelext-test")
USER_PLAIN = os.environ.get("KERNELEXT_TEST_USER_PLAIN", "kernelext-test-plain")
SUITE_TIMEOUT_S = 900
SUBIDS_TESTS = ["tests/test_rootless.py", "tests/test_lifecycle.py", "tests/test_copy.py", "tests/test_magics.py",
                "tests/test_widgets.py", "tests/test_ports.py", "notebooks/00-tour.ipynb"]
PLAIN_TESTS = ["tests/test_rootless.py", "tests/test_ports.py"]

pytestmark = pytest.mark.skipif(ROOTLESS, reason="starts the rootless run: needs root to switch users")


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
