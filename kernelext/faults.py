"""Named points where a test can have the process killed (fault injection).

The crash-safety harness (tests/test_crash.py, bench/kill_anywhere.py) sets
``KERNELEXT_FAULT=<point>`` for one command; when that command reaches the
point it SIGKILLs itself, as a closed terminal or an OOM kill would, at exactly
that step. Unset (always, outside those tests), a point costs one dictionary
lookup.
"""

from __future__ import annotations

import os
import signal

ENV_FAULT = "KERNELEXT_FAULT"


def point(name: str) -> None:
    """Die here, now, if this is the point the environment names."""
    if os.environ.get(ENV_FAULT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
