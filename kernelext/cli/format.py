"""Output formatting for the CLI: tables, durations, sizes and times (templates: :mod:`kernelext.cli.template`)."""

from __future__ import annotations

import re
import time
from datetime import datetime

from kernelext.cli.parser import UsageError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in [headers, *rows]]
    return "\n".join(lines)


def human_duration(seconds: float) -> str:
    """podman's ``units.HumanDuration``: "Less than a second", "5 seconds", "About a minute" ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    return f"{hours // 24} days"


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.3g}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1000
    return f"{size}GB"


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
