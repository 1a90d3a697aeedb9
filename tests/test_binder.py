"""binder/ as far as it can be tested here (issue 22): repo2docker needs a container engine to build an image,
which this host cannot run, so these tests check what can be checked without one.

* the environment files are valid: every apt.txt package exists in the configured Debian archive,
  requirements.txt parses, postBuild is a bash script that parses;
* postBuild runs as a normal user in a fresh venv where requirements.txt was installed, as repo2docker
  runs it;
* a Binder session is a normal user who may not create user namespaces (the seccomp profile of
  Binder's containers): every notebook runs there with no traceback, its host report (the second cell) saying what cannot
  run and why (tests/nouserns.c refuses user namespaces as that profile does).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest

from conftest import ROOTLESS

REPO = Path(__file__).resolve().parent.parent
BINDER = REPO / "binder"
STAGE = Path(os.environ.get("KERNELEXT_ROOTLESS_STAGE", "/var/lib/kernelext-rootless-tests"))
USER = os.environ.get("KERNELEXT_TEST_USER", "kernelext-test")
#: Set in Binder sessions; the notebooks' host report reads it.
BINDER_ENV = {"BINDER_SERVICE_HOST": "binder-test"}
VENV_TIMEOUT_S = 900
NOTEBOOK_TIMEOUT_S = 600

def as_root(test: Callable[..., None]) -> Callable[..., None]:
    """Switches to a normal user (needs root) and runs kernelext there: an integration test."""
    return pytest.mark.integration(pytest.mark.skipif(ROOTLESS, reason="switches to a normal user: needs root")(test))


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A directory of the test user's (pytest's own are private to root), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="kernelext-binder-"))
    path.chmod(0o755)
    shutil.chown(path, USER)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_apt_txt_names_packages_of_the_archive() -> None:
    packages = [line.split("#")[0].strip() for line in (BINDER / "apt.txt").read_text().splitlines()]
    packages = [p for p in packages if p]
    assert packages
    for package in packages:
        proc = subprocess.run(["apt-cache", "show", "--no-all-versions", package], check=False, capture_output=True, text=True)
        assert proc.returncode == 0 and f"Package: {package}" in proc.stdout, f"apt.txt: no package {package}"


def test_requirements_and_post_build_parse() -> None:
    from packaging.requirements import Requirement

    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and line != ".":  # "." is the repository itself, installed from its root
            Requirement(line)
    post_build = BINDER / "postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    assert post_build.read_text().startswith("#!/bin/bash")
    subprocess.run(["bash", "-n", str(post_build)], check=True)


def _as_user(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    home = pwd.getpwnam(USER).pw_dir
    base = {"HOME": home, "USER": USER, "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["runuser", "-u", USER, "--", "env", "-i", *(f"{k}={v}" for k, v in {**base, **env}.items()),
                           *argv], cwd=cwd, check=False, capture_output=True, text=True, timeout=timeout)


def _stage() -> Path:
    if not (STAGE / ".venv" / "bin" / "python").exists():
        pytest.fail(f"no {STAGE}/.venv: run scripts/setup.sh (it prepares the rootless test copy)")
    subprocess.run([str(REPO / "scripts" / "stage-checkout.sh"), str(STAGE), USER], check=True)
    return STAGE


@as_root
@pytest.mark.timeout(VENV_TIMEOUT_S + 60)
def test_post_build_runs_as_a_normal_user_in_a_fresh_venv(user_dir: Path) -> None:
    """As repo2docker: install requirements.txt from the repository's root, then run postBuild."""
    repo = _stage()
    venv = user_dir / "venv"
    made = _as_user(["/usr/bin/python3", "-m", "venv", str(venv)], cwd=repo, env={}, timeout=120)
    assert made.returncode == 0, made.stderr
    path = {"PATH": f"{venv}/bin:/usr/bin:/bin"}
    pip = {**path, **{k: v for k, v in os.environ.items() if k.startswith("PIP_")}}
    installed = _as_user([f"{venv}/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                          "binder/requirements.txt"], cwd=repo, env=pip, timeout=VENV_TIMEOUT_S)
    assert installed.returncode == 0, installed.stderr[-3000:]
    post = _as_user(["binder/postBuild"], cwd=repo, env=path, timeout=120)
    assert post.returncode == 0, post.stderr[-3000:]
    assert post.stdout.startswith("kernelext ")


def _nouserns(directory: Path) -> Path:
    binary = directory / "nouserns"
    subprocess.run(["cc", "-O2", "-o", str(binary), str(REPO / "tests" / "nouserns.c")], check=True)
    binary.chmod(0o755)
    return binary


@as_root
@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S * 2)
def test_every_notebook_runs_without_a_traceback_where_no_user_namespace_can_be_made(user_dir: Path) -> None:
    repo = _stage()
    shim = _nouserns(user_dir)
    refused = _as_user([str(shim), "unshare", "--user", "true"], cwd=repo, env={}, timeout=30)
    assert refused.returncode != 0, "the shim let a user namespace through"
    work = user_dir / "run"
    work.mkdir()
    shutil.chown(work, USER)
    notebooks = sorted((repo / "notebooks").glob("*.ipynb"))
    for notebook in notebooks:
        shutil.copy2(notebook, work)
        shutil.chown(work / notebook.name, USER)
    script = (
        "import sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        "for path in sys.argv[2:]:\n"
        "    nb = nbformat.read(path, as_version=4)\n"
        f"    NotebookClient(nb, timeout={NOTEBOOK_TIMEOUT_S}, kernel_name='python3', allow_errors=True,\n"
        "                   resources={'metadata': {'path': sys.argv[1]}}).execute()\n"
        "    nbformat.write(nb, path)\n")
    env = {**BINDER_ENV, "PATH": f"{repo}/.venv/bin:/usr/bin:/bin", "KERNELEXT_NOTEBOOK_STORE": str(work),
           "KERNELEXT_FORKSERVER": "0"}
    proc = _as_user([str(shim), f"{repo}/.venv/bin/python", "-c", script, str(repo / "notebooks"),
                     *(str(work / n.name) for n in notebooks)], cwd=work, env=env, timeout=NOTEBOOK_TIMEOUT_S * 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for notebook in notebooks:
        cells = [c for c in nbformat.read(work / notebook.name, as_version=4).cells if c.cell_type == "code"]
        errors = [(i, o.ename, o.evalue) for i, c in enumerate(cells) for o in c.outputs if o.output_type == "error"]
        assert errors == [], f"{notebook.name}: tracebacks where the host lacks user namespaces"
        report = next(c for c in cells if c.source.startswith("host_report("))
        first = "".join(o.get("text", "") for o in report.outputs)
        assert "On Binder" in first and "✘ run containers" in first and "user namespaces" in first, first
        skipped = sum("[skipped" in o.get("text", "") for c in cells for o in c.outputs)
        assert skipped > 0, f"{notebook.name}: no cell said it was skipped"


def test_every_stored_output_reads_without_running_the_notebook() -> None:
    """Binder shows the stored outputs: each has a text form (a widget's too), none is an error left by accident."""
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(notebook, as_version=4).cells:
            for out in cell.get("outputs", []):
                if out.output_type in ("display_data", "execute_result"):
                    assert out.data.get("text/plain", "").strip(), f"{notebook.name}: an output with no text form"
                elif out.output_type == "error":
                    assert "raises-exception" in cell.metadata.get("tags", []), f"{notebook.name}: {out.ename}"


@as_root
def test_a_run_where_no_user_namespace_can_be_made_fails_at_once_with_the_reason(user_dir: Path) -> None:
    """unshare's ID-mapping helper would wait forever for the refused parent: kernelext asks first."""
    repo = _stage()
    shim = _nouserns(user_dir)
    store = ["--root", str(user_dir / "root"), "--runroot", str(user_dir / "run")]
    env = {"PATH": f"{repo}/.venv/bin:/usr/bin:/bin", "KERNELEXT_FORKSERVER": "0"}
    proc = _as_user([str(shim), f"{repo}/.venv/bin/python", "-m", "kernelext", *store, "run", "--rm", "busybox",
                     "true"], cwd=user_dir, env=env, timeout=60)
    assert proc.returncode == 125
    assert proc.stderr.splitlines() == ["Error: cannot create the rootless user namespace: Operation not permitted"]
    left = _as_user([str(shim), f"{repo}/.venv/bin/python", "-m", "kernelext", *store, "ps", "-a", "--format",
                     "{{.Names}}"], cwd=user_dir, env=env, timeout=60)
    assert left.returncode == 0 and left.stdout == "", "a refused run left a container behind"
    info = _as_user([str(shim), f"{repo}/.venv/bin/python", "-m", "kernelext", *store, "info"], cwd=user_dir,
                    env=env, timeout=60)
    assert "may not create user namespaces (Operation not permitted)" in info.stdout, info.stdout
