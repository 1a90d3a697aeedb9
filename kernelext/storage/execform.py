"""The exec form of a command (``'["sh", "-c", "x"]'``), shared by ``--entrypoint`` and ``--change CMD``.

Each caller decides what a text not in exec form means (one word for
``--entrypoint``, ``/bin/sh -c TEXT`` for a Dockerfile instruction).
"""

from __future__ import annotations

import json


def exec_form(text: str) -> list[str] | None:
    """``text`` as a list of arguments when it is a JSON array of strings, else None."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None
