"""Progress of a pull or load: what skopeo reports, the bytes it has written, the layers unpacked.

Front ends render it: the CLI relays skopeo's own lines on a terminal (as
podman prints them), a notebook cell shows a progress bar, Python callers get
the events through a callback.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class Phase(enum.Enum):
    STEP = "step"      # a line as skopeo (and podman) prints it: "Copying blob sha256:..."
    BYTES = "bytes"    # bytes of the image copied so far (``total``: the manifest's sum when known)
    UNPACK = "unpack"  # layer ``done`` of ``total`` unpacked
    DONE = "done"


@dataclass(frozen=True)
class Progress:
    phase: Phase
    message: str = ""
    done: int = 0
    total: int | None = None


ProgressCallback = Callable[[Progress], None]
