"""Named points where a test can have the process killed (fault injection).

The crash-safety harness (tests/test_crash.py, bench/kill_anywhere.py) sets
``KERNELEXT_FAULT=<point>`` for one command; when that command reaches the
point it SIGKILLs itself, as a closed terminal or an OOM kill would, at exactly
that step. ``<point>@SIGINT`` sends it SIGINT instead: a Ctrl-C, which the
command sees as ``KeyboardInterrupt`` at that step and must unwind from cleanly.
Unset (always, outside those tests), a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV_FAULT = "KERNELEXT_FAULT"
#: ``<point>@<signal>``: the signal sent at the point instead of SIGKILL.
SIGNAL_SEPARATOR = "@"


def point(name: str) -> None:
    """Die here, now (or be interrupted), if this is the point the environment names."""
    wanted = os.environ.get(ENV_FAULT)
    if wanted is None:
        return
    where, _, how = wanted.partition(SIGNAL_SEPARATOR)
    if where == name:
        os.kill(os.getpid(), signal.Signals[how] if how else signal.SIGKILL)
