"""Numbers for people, as podman prints them: sizes in kB/MB/GB, durations, a container's status line.

The CLI, the magics' values and the widgets all use these, so the same
container reads the same everywhere; ``--format`` templates get the raw values.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernelext.core.container import Container

#: go-units' decimal units (podman's ``units.HumanSize``).
SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def go_time(seconds: float) -> str:
    """Go's ``time.Unix(seconds, 0).String()`` in local time: ``2022-06-15 18:11:46 +0000 UTC`` (podman's
    ``images --format {{.CreatedAt}}``)."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(int(seconds)))


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


def human_size(size: float, precision: int = 3) -> str:
    """podman's sizes: powers of 1000, three significant digits ("412kB", "1.2GB", "24.6kB"); ``inspect``
    uses go-units' ``HumanSize``, four."""
    for unit in SIZE_UNITS:
        if size < 1000 or unit == SIZE_UNITS[-1]:
            return f"{size:.{precision}g}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1000
    raise AssertionError("unreachable")




def image_size(size: float) -> str:
    """go-units' ``HumanSizeWithPrecision(size, 3)``, as podman shows image sizes: ``1.24 MB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.3g} {unit}"
        size /= 1000
    return f"{size:.3g} TB"


def status_text(ctr: Container, now: float | None = None) -> str:
    """podman ps's STATUS: "Up 3 seconds", "Paused", "Exited (137) 5 seconds ago", "Created"."""
    st = ctr.state
    return status_words(st.status.value, st.exit_code, st.started_at, st.finished_at, now)


def status_words(state: str, exit_code: int, started_at: float, finished_at: float, now: float | None = None) -> str:
    """STATUS from a state word (podman's, as a remote service lists it too) and its times."""
    now = time.time() if now is None else now
    if state == "running":
        return f"Up {human_duration(now - started_at)}"
    if state == "paused":
        return "Paused"
    if state in ("stopped", "exited"):
        return f"Exited ({exit_code}) {human_duration(now - finished_at)} ago"
    return state.capitalize()  # "Created" (configured), "Initialized", "Stopping", "Removing"


#: podman stats' table columns.
STATS_COLUMNS = ("ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS")


def stats_row(stats: dict[str, Any]) -> dict[str, str]:
    """One ``Container.stats()`` sample as podman stats' table shows it ("0.62%", "412kB / 1.2GB")."""
    values = (stats["ContainerID"][:12], stats["Name"], f"{stats['CPU']:.2f}%",
              f"{human_size(stats['MemUsage'])} / {human_size(stats['MemLimit'])}", f"{stats['MemPerc']:.2f}%",
              str(stats["PIDs"]))
    return dict(zip(STATS_COLUMNS, values, strict=True))


#: Go's zero time.Time, what podman shows for a moment that never happened.
ZERO_TIME = "0001-01-01T00:00:00Z"


def format_time(timestamp: float) -> str:
    """An inspect document's time: RFC 3339 in UTC with microseconds (Go's zero time for none)."""
    if not timestamp:
        return ZERO_TIME
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
