"""Every module of kernelext imports first, in a fresh interpreter state: no import cycle that only a
certain order of imports hides (``%container image tree`` in a new kernel once failed on one)."""

from __future__ import annotations

import subprocess
import sys

#: Run in a child interpreter: forgetting and re-importing kernelext here would leave this test process
#: with two copies of every class.
CHECK = """
import importlib, pkgutil, sys
import kernelext
names = sorted(i.name for i in pkgutil.walk_packages(kernelext.__path__, "kernelext.")
               if not i.name.endswith(".__main__"))  # __main__ runs the CLI
for name in names:
    for loaded in [m for m in sys.modules if m == "kernelext" or m.startswith("kernelext.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as exc:
        print(f"{name}: {exc}")
"""


def test_each_module_imports_first() -> None:
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
