"""How core objects look in a notebook: an HTML card or table, and a short,
stable ``text/plain`` (no IDs, no durations) that nbval can compare.

The core knows nothing of this: :func:`register` attaches the renderers to
IPython's display formatters when the extension loads.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from kernelext.core.container import Container
from kernelext.core.history import CheckpointEntry
from kernelext.core.state import ContainerStatus
from kernelext.domain.engine import ContainerRecord
from kernelext.units import human_size

S = ContainerStatus
#: Badge colours by state, chosen to read as traffic lights.
BADGE_COLOURS = {
    S.RUNNING: "#1a7f37", S.PAUSED: "#9a6700", S.STOPPING: "#9a6700", S.CREATED: "#0969da",
    S.CONFIGURED: "#57606a", S.STOPPED: "#cf222e", S.EXITED: "#cf222e", S.REMOVING: "#57606a",
    S.UNKNOWN: "#57606a",
}
_CARD_STYLE = ("display:inline-block;border:1px solid var(--jp-border-color1,#bdbdbd);border-radius:2px;"
               "padding:6px 10px;font-family:var(--jp-code-font-family,monospace);font-size:12px")
#: ps' HTML table: headers and cells left-aligned, names and commands never wrapped.
_CELL_STYLE = "text-align:left;white-space:nowrap"


def _uptime(ctr: Container) -> str:
    """podman ps's "Up 3 seconds" while it runs (paused: "Paused" is the badge already)."""
    from kernelext.units import status_text

    return status_text(ctr) if ctr.status is S.RUNNING and ctr.state.started_at else ""


def badge(status: ContainerStatus) -> str:
    colour = BADGE_COLOURS[status]
    return (f'<span style="background:{colour};color:white;border-radius:10px;padding:1px 8px;'
            f'font-weight:600">{status.value}</span>')


def _notes(ctr: Container) -> list[str]:
    notes = [f"exit code {ctr.exit_code}"] if ctr.state.exited else []
    if ctr.state.checkpointed:
        notes.append("checkpointed")
    if ctr.state.restored and ctr.status is S.RUNNING:
        notes.append("restored")
    return notes


def container_text(ctr: Container) -> str:
    return ", ".join([f"Container {ctr.name} ({ctr.image}): {ctr.status.value}", *_notes(ctr)])


def record_text(record: ContainerRecord) -> str:
    """A remote engine's container as :func:`container_text` shows a local one (podman's list rows carry no
    checkpointed or restored flag)."""
    notes = [f"exit code {record.exit_code}"] if record.exited else []
    return ", ".join([f"Container {record.name} ({record.image}): {record.state}", *notes])


def record_html(record: ContainerRecord) -> str:
    try:
        status = ContainerStatus(record.state)
    except ValueError:  # a state podman has and the local core not (e.g. "stopping" spelled otherwise)
        status = S.UNKNOWN
    parts = [badge(status), f"<b>{html.escape(record.name)}</b>",
             f'<span title="{record.id}">{record.short_id}</span>', html.escape(record.image),
             f"on {html.escape(record.engine)}"]
    if record.exited:
        parts.append(f"exit code {record.exit_code}")
    return f'<div style="{_CARD_STYLE}">' + " &middot; ".join(parts) + "</div>"


def container_html(ctr: Container) -> str:
    parts = [badge(ctr.status), f"<b>{html.escape(ctr.name)}</b>", f'<span title="{ctr.id}">{ctr.short_id}</span>',
             html.escape(ctr.image)]
    parts.extend(_notes(ctr))
    if uptime := _uptime(ctr):
        parts.append(uptime)
    if ctr.state.error:
        parts.append(f'<span style="color:var(--jp-error-color1,#c62828)">{html.escape(ctr.state.error)}</span>')
    return f'<div style="{_CARD_STYLE}">' + " &middot; ".join(parts) + "</div>"


class ContainerList(list[Container]):
    """What ``%container ps`` returns: a list of containers that renders as a table."""

    def __repr__(self) -> str:
        from kernelext.cli.format import table

        if not self:
            return "no containers"
        return table(["NAME", "IMAGE", "STATE", "EXIT CODE"],
                     [[c.name, c.image, c.status.value, str(c.exit_code) if c.state.exited else ""] for c in self])

    def _repr_html_(self) -> str:
        from kernelext.units import status_text

        head = "".join(f'<th style="{_CELL_STYLE}">{h}</th>'
                       for h in ("STATE", "NAME", "ID", "IMAGE", "COMMAND", "STATUS"))
        cells = ([badge(c.status), f"<b>{html.escape(c.name)}</b>", c.short_id, html.escape(c.image),
                  f"<code>{html.escape(' '.join(c.config.args))}</code>", html.escape(status_text(c))] for c in self)
        body = "".join("<tr>" + "".join(f'<td style="{_CELL_STYLE}">{v}</td>' for v in row) + "</tr>" for row in cells)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Table(list[dict[str, Any]]):
    """Rows (``stats``, ``top``, ``images``, ``events``) with a text and an HTML table form."""

    def __init__(self, rows: Iterable[dict[str, Any]], columns: list[str]) -> None:
        super().__init__(rows)
        self.columns = columns

    def __repr__(self) -> str:
        from kernelext.cli.format import table

        return table(self.columns, [[str(r.get(c, "")) for c in self.columns] for r in self])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in self.columns) + "</tr>"
                       for r in self)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


#: ``system df``'s columns, as the CLI's table heads them (the rows' field names).
USAGE_COLUMNS = {"TYPE": "Type", "TOTAL": "Total", "ACTIVE": "Active", "SIZE": "Size", "RECLAIMABLE": "Reclaimable"}


def usage_table(rows: list[dict[str, Any]]) -> Table:
    """``%container system df``: the CLI's table (:func:`kernelext.cli.checkpoints.usage_rows`), on any engine."""
    return Table(({head: row[key] for head, key in USAGE_COLUMNS.items()} for row in rows), list(USAGE_COLUMNS))


def entry_text(entry: CheckpointEntry) -> str:
    """Stable for nbval: the entry's number, name, container and parent (no sizes, times or IDs)."""
    name = f" ({entry.name})" if entry.name else ""
    parent = f", parent {entry.parent_label()}" if entry.parent and entry.parent.container_id == entry.container_id \
        else ", branched" if entry.parent else ""
    return f"Checkpoint {entry.number}{name} of {entry.container_name}{parent}"


def _figures(entry: CheckpointEntry) -> list[tuple[str, str]]:
    stats = entry.criu_statistics
    frozen = entry.frozen_ms
    return [("size", human_size(entry.size)), ("frozen", "" if frozen is None else f"{frozen:.1f} ms"),
            ("pages written", str(stats.get("pages_written", ""))),
            ("pages scanned", str(stats.get("pages_scanned", ""))),
            ("memdump", f"{stats.get('memdump_time', 0) / 1000:.1f} ms"),
            ("memwrite", f"{stats.get('memwrite_time', 0) / 1000:.1f} ms")]


def entry_html(entry: CheckpointEntry) -> str:
    """A card: the entry's number and name, when, its parent, then its size and CRIU's figures."""
    import time

    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.created))
    head = [f'<b>#{entry.number}</b>', f"<b>{html.escape(entry.name)}</b>" if entry.name else "",
            html.escape(entry.container_name), html.escape(when),
            f"parent {html.escape(entry.parent_label())}" if entry.parent else "",
            "kept running" if entry.leave_running else "", f"exported to {html.escape(entry.export)}"
            if entry.export else ""]
    figures = " &middot; ".join(f'<span style="color:var(--jp-ui-font-color2,#666)">{k}</span> {html.escape(v)}'
                                for k, v in _figures(entry) if v)
    return (f'<div style="{_CARD_STYLE}">' + " &middot; ".join(p for p in head if p) + f"<br>{figures}</div>")


class CheckpointList(list[CheckpointEntry]):
    """What ``%container checkpoint ls`` returns: a container's history, a table in both forms."""

    COLUMNS = ("ENTRY", "NAME", "PARENT", "SIZE", "FROZEN", "PAGES")

    def _rows(self) -> list[list[str]]:
        return [[str(e.number), e.name, e.parent_label(), human_size(e.size),
                 "" if e.frozen_ms is None else f"{e.frozen_ms:.1f}ms", str(e.criu_statistics.get("pages_written", ""))]
                for e in self]

    def __repr__(self) -> str:
        from kernelext.cli.format import table

        return table(list(self.COLUMNS), self._rows()) if self else "no checkpoints"

    def _repr_html_(self) -> str:
        head = "".join(f'<th style="{_CELL_STYLE}">{h}</th>' for h in self.COLUMNS)
        body = "".join("<tr>" + "".join(f'<td style="{_CELL_STYLE}">{html.escape(v)}</td>' for v in row) + "</tr>"
                       for row in self._rows())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def register(ip: Any) -> None:
    formatters = ip.display_formatter.formatters
    formatters["text/plain"].for_type(Container, lambda c, p, cycle: p.text(container_text(c)))
    formatters["text/html"].for_type(Container, container_html)
    formatters["text/plain"].for_type(ContainerRecord, lambda r, p, cycle: p.text(record_text(r)))
    formatters["text/html"].for_type(ContainerRecord, record_html)
    formatters["text/plain"].for_type(CheckpointEntry, lambda e, p, cycle: p.text(entry_text(e)))
    formatters["text/html"].for_type(CheckpointEntry, entry_html)


def unregister(ip: Any) -> None:
    for mime in ("text/plain", "text/html"):
        for kind in (Container, ContainerRecord, CheckpointEntry):
            try:
                ip.display_formatter.formatters[mime].pop(kind)
            except KeyError:
                pass
