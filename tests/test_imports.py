"""Every module of kernelext imports first, in a fresh interpreter state: no import cycle that only a
certain order of imports hides (``%container image tree`` in a new kernel once failed on one)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import kernelext


def _modules() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(kernelext.__path__, "kernelext.")
                  if not info.name.endswith(".__main__"))  # runs the CLI


def test_each_module_imports_first() -> None:
    failures = []
    for name in _modules():
        for loaded in [m for m in sys.modules if m == "kernelext" or m.startswith("kernelext.")]:
            del sys.modules[loaded]
        try:
            importlib.import_module(name)
        except ImportError as exc:
            failures.append(f"{name}: {exc}")
    for loaded in [m for m in sys.modules if m == "kernelext" or m.startswith("kernelext.")]:
        del sys.modules[loaded]
    importlib.import_module("kernelext")
    assert failures == []
