"""Output formatting for the CLI: tables and times (sizes and durations: :mod:`kernelext.units`; templates:
:mod:`kernelext.cli.template`)."""

from __future__ import annotations

import re
import time
from datetime import datetime

from kernelext.cli.parser import UsageError
from kernelext.units import human_duration, human_size

#: Sizes and durations live in kernelext.units; re-exported here, the CLI's formatting API.
__all__ = ["human_duration", "human_size", "parse_interval", "parse_time", "since", "table"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in [headers, *rows]]
    return "\n".join(lines)


def parse_interval(text: str) -> float:
    """A Go-style duration (``250ms``, ``2s``); a bare number is milliseconds, as podman's ``--interval``."""
    if text.isdigit():
        return int(text) / 1000
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"invalid duration {text!r}: use a number with ms, s, m or h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_time(text: str | None) -> float | None:
    """A timestamp (RFC 3339, or Unix seconds) or a duration back from now (``10m``)."""
    if not text:
        return None
    if _DURATION.match(text):
        return time.time() - parse_interval(text)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        from kernelext.core.logs import parse_timestamp

        return parse_timestamp(text) if "T" in text else datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(f"invalid time {text!r}") from None


def since(timestamp: float) -> str:
    """How long ago ``timestamp`` was, as podman's CREATED columns say it ("5 minutes ago")."""
    return human_duration(time.time() - timestamp) + " ago"
