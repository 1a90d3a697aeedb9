"""Where the widgets' browser side (ES modules and CSS) is.

In a source checkout it is the top-level ``widgets/`` folder (docs/architecture.md §1);
an installed wheel carries the same files as ``kernelext/assets/``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent
ASSETS = next((p for p in (_PACKAGE.parent / "widgets", _PACKAGE / "assets") if p.is_dir()), _PACKAGE / "assets")


def asset(name: str) -> Path:
    return ASSETS / name


def esm(*names: str) -> str:
    """ES modules joined into one (anywidget loads a single module, so a
    widget's local imports such as ``./ansi.js`` are inlined here, no build step)."""
    parts = []
    for name in names:
        lines = asset(name).read_text().splitlines()
        parts.append("\n".join(line for line in lines if not (line.startswith("import ") and '"./' in line)))
    return "\n".join(parts)


def css(*names: str) -> str:
    """Style sheets joined into one, the shared theme (``theme.css``) first."""
    return "\n".join(asset(name).read_text() for name in ("theme.css", *names))


def umd(name: str, binding: str) -> str:
    """A vendored UMD bundle (``vendor/...``) as a statement of an ES module: ``const BINDING = ...exports``.

    The bundle runs in a function that hands it a CommonJS ``module``, so it needs no loader and its
    minified names cannot clash with the module it is inlined into. Its exports are kept on ``globalThis``
    under the bundle's name and size, so every widget module that inlines it (anywidget evaluates each
    model's module anew) shares one copy and its per-page state (xterm numbers its renderers' styles).
    """
    text = asset(name).read_text()
    key = f"__kernelext_{binding}_{len(text)}"
    return (f"const {binding} = (globalThis.{key} ??= (() => {{ const module = {{ exports: {{}} }};"
            f" const exports = module.exports;\n{text}\nreturn module.exports; }})());")
