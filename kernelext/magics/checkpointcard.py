"""What ``%container checkpoint inspect`` and ``checkpoint diff`` return: the core's dataclasses with a
text form (the CLI's tree) and an HTML card themed by the host's CSS variables (as the widgets are;
docs/architecture.md §12), its process tree collapsible."""

from __future__ import annotations

import html
from typing import Any

from kernelext.cli.checkpointtree import diff_text, file_text, inspect_text
from kernelext.core.checkpointinfo import CheckpointDiff, CheckpointInfo, Process
from kernelext.units import human_size

_FG2 = "var(--jp-ui-font-color2,rgba(0,0,0,0.6))"
_CARD = ("border:1px solid var(--jp-border-color1,#bdbdbd);border-radius:2px;padding:6px 10px;"
         "color:var(--jp-ui-font-color1,rgba(0,0,0,0.87));background:var(--jp-layout-color1,#fff);"
         "font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:var(--jp-ui-font-size1,13px)")
_MONO = "font-family:var(--jp-code-font-family,monospace)"
_LIST = "margin:2px 0 2px 18px;padding:0"
#: A tree deeper than this is shown closed below it (a shell pipeline is two or three levels).
OPEN_DEPTH = 2


def _e(value: object) -> str:
    return html.escape(str(value))


def _items(lines: list[str]) -> str:
    return f'<ul style="{_LIST}">' + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"


def _process_html(p: Process, depth: int = 0) -> str:
    state = "" if p.state == "Alive" else f' <span style="color:{_FG2}">({_e(p.state)})</span>'
    body = []
    if p.files:
        body.append(f'<div style="color:{_FG2}">open files</div>'
                    + _items([f'<code style="{_MONO}">{_e(file_text(f))}</code>' for f in p.files]))
    if p.memory:
        body.append(f'<div style="color:{_FG2}">memory (dumped / mapped)</div>'
                    + _items([f"{_e(m.kind.value)}: {human_size(m.dumped)} / {human_size(m.virtual)}"
                              for m in p.memory]))
    body.extend(_process_html(c, depth + 1) for c in sorted(p.children, key=lambda c: c.pid))
    opened = " open" if depth < OPEN_DEPTH else ""
    return (f'<details{opened} style="margin-left:{12 if depth else 0}px"><summary><b>{p.pid}</b>{state} '
            f'<code style="{_MONO}">{_e(p.command)}</code></summary>{"".join(body)}</details>')


class CheckpointCard:
    """A checkpoint as a card: the container, CRIU's figures, the process tree, the filesystem changes."""

    def __init__(self, info: CheckpointInfo) -> None:
        self.info = info

    def __repr__(self) -> str:
        return inspect_text(self.info)

    def to_dict(self) -> dict[str, Any]:
        return self.info.to_dict()

    def _repr_html_(self) -> str:
        info = self.info
        facts = [f"<b>{_e(info.container_name or 'Container')}</b>", _e(info.image), _e(info.runtime),
                 f"{human_size(info.size)} ({human_size(info.memory_pages_size)} of memory pages)"]
        stats = info.statistics
        if stats:
            facts.append(f"frozen {stats.get('frozen_time', 0) / 1000:.1f} ms, "
                         f"{stats.get('pages_written', 0)} pages written")
        parts = [f'<div>{" &middot; ".join(facts)}</div>',
                 f'<div style="color:{_FG2};{_MONO}">{_e(info.source)}</div>']
        if info.namespaces:
            parts.append(f'<div style="color:{_FG2}">namespaces: '
                         + ", ".join(f"{_e(k)} {v}" for k, v in info.namespaces.items()) + "</div>")
        parts.append("<div><b>Processes</b></div>" + "".join(_process_html(p) for p in info.tree))
        changes = [f'<code style="{_MONO}">{_e(c.path)}</code> {human_size(c.size)}' for c in info.changed_files]
        changes += [f'<code style="{_MONO}">{_e(p)}</code> deleted' for p in info.deleted_files]
        if changes:
            parts.append(f"<details><summary><b>Filesystem changes</b> ({len(changes)})</summary>"
                         f"{_items(changes)}</details>")
        return f'<div class="kx-checkpoint" style="{_CARD}">{"".join(parts)}</div>'


class CheckpointDiffCard:
    """What changed between two checkpoints, as text and as a card."""

    def __init__(self, diff: CheckpointDiff) -> None:
        self.diff = diff

    def __repr__(self) -> str:
        return diff_text(self.diff)

    def to_dict(self) -> dict[str, Any]:
        return self.diff.to_dict()

    def _repr_html_(self) -> str:
        d = self.diff
        sections = []
        for title, paths in (("files added", d.files_added), ("files changed", d.files_changed),
                             ("files no longer changed", d.files_removed), ("files deleted", d.deleted_added),
                             ("files no longer deleted", d.deleted_removed)):
            if paths:
                sections.append(f"<div><b>{title}</b></div>"
                                + _items([f'<code style="{_MONO}">{_e(p)}</code>' for p in paths]))
        for title, procs in (("processes started", d.processes_started), ("processes ended", d.processes_ended)):
            if procs:
                sections.append(f"<div><b>{title}</b></div>" + _items(
                    [f'{p.pid} <code style="{_MONO}">{_e(p.command)}</code>' for p in procs]))
        for change in d.processes_changed:
            lines = [f"memory {_e(k)}: {'+' if v > 0 else '-'}{human_size(abs(v))}" for k, v in change.memory.items()]
            lines += [f"opened <code>{_e(file_text(f))}</code>" for f in change.opened]
            lines += [f"closed <code>{_e(file_text(f))}</code>" for f in change.closed]
            sections.append(f"<div><b>process {change.pid}</b> {_e(change.comm)}</div>" + _items(lines))
        head = f'<div style="color:{_FG2};{_MONO}">{_e(d.a)} &rarr; {_e(d.b)}</div>'
        return f'<div class="kx-checkpoint-diff" style="{_CARD}">{head}{"".join(sections) or "no changes"}</div>'
