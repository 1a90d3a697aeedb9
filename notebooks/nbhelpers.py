"""Small helpers shared by the notebooks in this folder (not part of kernelext).

* :func:`notebook_store` — each notebook keeps its containers in its own store,
  so it never touches yours and can remove everything it made.
* :func:`host_check` — what this host can do, and :func:`host_report`, the one cell that prints it
  (tagged ``nbval-ignore-output``: that output is this host's, the only one nbval does not compare);
  on a host that lacks something (not root, no CRIU) the cells that need it print one
  ``[skipped: ...]`` line instead of a traceback.
* :func:`wait_until` — wait for what a cell shows next (a trap set, restarts done) instead of sleeping.
* exercises are checked by ``selfcheck.py``.
* :func:`cleanup` — remove every container of the notebook's store.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelext import KernelextError, Runtime
from kernelext.host import host_capabilities

#: Set by notebooks/conftest.py (a fresh directory per test run); otherwise a fixed place per user.
ENV_BASE = "KERNELEXT_NOTEBOOK_STORE"
#: How long a cell waits for what it shows next: generous, as a loaded host can be slow.
WAIT_TIMEOUT_S = 60.0
WAIT_INTERVAL_S = 0.05
#: Set in every Binder session (repo2docker's images on mybinder.org).
BINDER_ENV = ("BINDER_SERVICE_HOST", "BINDER_LAUNCH_HOST", "BINDER_REQUEST")


@dataclass(frozen=True)
class NotebookStore:
    name: str
    root: str
    run: str

    def runtime(self) -> Runtime:
        return Runtime(self.root, self.run)


def _base() -> Path:
    if os.environ.get(ENV_BASE):
        return Path(os.environ[ENV_BASE])
    if os.geteuid() == 0:
        return Path("/var/tmp/kernelext-notebooks")
    return Path(tempfile.gettempdir()) / f"kernelext-notebooks-{os.geteuid()}"


def notebook_store(name: str) -> NotebookStore:
    """The store of notebook ``name``; containers left by an earlier, interrupted run are removed."""
    base = _base() / name
    store = NotebookStore(name, str(base / "root"), str(base / "run"))
    if Path(store.root, "db.sqlite").exists():
        cleanup(store.runtime(), quiet=True)
    return store


# --------------------------------------------------------------------- host
_MISSING: dict[str, str] = {}


def _skip_handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
    reason = "; ".join(sorted(set(_MISSING.values())))
    if isinstance(value, NameError):
        print(f"[skipped: this cell uses a result of an earlier cell that could not run here ({reason})]")
    else:
        print(f"[skipped ({type(value).__name__}): {reason}]")


#: What each capability the notebooks ask about lets them do (the host report's lines).
WHAT = {
    "containers": "run containers (runc + conmon + overlayfs)",
    "pause": "pause and unpause (freezer cgroup)",
    "checkpoint": "checkpoint and restore (CRIU)",
    "pre-copy": "pre-copy checkpoints (CRIU memory dirty tracking)",
}
#: The tag of the cell that calls host_report: its output is this host's, so nbval does not compare it.
REPORT_TAG = "nbval-ignore-output"


def host_check(runtime: Runtime) -> dict[str, bool]:
    """What this host can do for these notebooks, {feature: available}, without printing (see host_report).

    Where no container can run, cells that need one print one ``[skipped: ...]`` line instead of a traceback.
    """
    caps = host_capabilities(runtime.opts)
    # Rootless, every container lives in the store's user namespace: no user namespace, no container.
    needed = ("runc", "conmon", "overlay", *(("user_namespace",) if caps.rootless else ()))
    containers = all(caps.available(f) for f in needed)
    can = {
        "containers": containers,
        "pause": containers and caps.available("freezer"),
        "checkpoint": containers and caps.available("checkpoint"),
        "pre-copy": containers and caps.available("memory_tracking"),
        # Limits need a cgroup of the container's own (not in the report: no cell is about it alone).
        "limits": containers and caps.available("cgroups"),
    }
    no_containers = "; ".join(f"{f}: {caps.features[f].detail}" for f in needed if not caps.available(f))
    why = {
        "containers": no_containers,
        "pause": caps.features["freezer"].detail if caps.rootless else "no freezer cgroup",
        "checkpoint": caps.features["checkpoint"].detail.split(": ", 1)[-1],
        "pre-copy": "this kernel has no memory dirty tracking (CRIU: 'Dirty tracking is OFF')",
        "limits": caps.features["cgroups"].detail,
    }
    _MISSING.clear()
    _MISSING.update({key: why[key] if containers else no_containers for key, ok in can.items() if not ok})
    if not containers:
        try:
            from IPython import get_ipython
            shell = get_ipython()
        except ImportError:
            shell = None
        if shell is not None:
            shell.set_custom_exc((KernelextError, OSError, NameError), _skip_handler)
    return can


def host_report(can: dict[str, bool]) -> None:
    """Print what this host can do (✔) and cannot, and why (✘): the notebook's one host-specific cell."""
    if any(os.environ.get(v) for v in BINDER_ENV):
        print("On Binder: sessions may not create user namespaces, which every container needs (rootless too); "
              "read the stored outputs of this notebook instead of running its cells.")
    for key, what in WHAT.items():
        if can[key]:
            print(f"✔ {what}")
        else:
            print(f"✘ {what}: {_MISSING[key] if key == 'containers' or can['containers'] else 'needs containers'}")
    if not can["containers"]:
        print("Cells that need containers will print [skipped: ...] on this host.")


def require(can: dict[str, bool], feature: str) -> bool:
    """True if the host can do ``feature``; otherwise say so once, for the cell that needed it."""
    if not can.get(feature):
        print(f"[skipped: {feature}: {_MISSING.get(feature, 'not available on this host')}]")
        return False
    return True


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT_TIMEOUT_S) -> None:
    """Return once ``predicate()`` is true; TimeoutError naming ``what`` if it is not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for: {what}")
        time.sleep(WAIT_INTERVAL_S)


# ------------------------------------------------------------------ cleanup
def cleanup(runtime: Runtime, *, quiet: bool = False) -> None:
    """Remove every container of this notebook's store (force: running ones too)."""
    removed = 0
    for ctr in runtime.list():
        try:
            ctr.remove(force=True)
            removed += 1
        except KernelextError as exc:
            print(f"could not remove {ctr.name}: {exc}")
    if not quiet:
        print(f"removed {removed} containers; {len(runtime.list())} left in this notebook's store")


def scratch_dir(name: str) -> Path:
    """A fresh host directory for files this notebook copies in and out."""
    path = _base() / name / "files"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def remove_leftovers(base: str | os.PathLike[str], notebook: str) -> list[str]:
    """Force-remove every container in notebook's store under ``base``; the names removed (for the test run)."""
    store = Path(base) / notebook
    if not (store / "root" / "db.sqlite").exists():
        return []
    removed = []
    with Runtime(store / "root", store / "run") as rt:
        for ctr in rt.list():
            ctr.remove(force=True)
            removed.append(ctr.name)
        namespace = rt.namespace
    # The store's pause process goes with the store: stopped once the runtime is closed, as emptying the
    # trash (what the notebook's kernel left there too) enters the namespace and would start a new one.
    if namespace.rootless:
        namespace.stop()
    return removed
