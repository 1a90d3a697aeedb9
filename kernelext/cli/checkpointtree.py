"""A checkpoint and a diff of two as text trees, as podman's ``checkpointctl inspect`` draws them
(the CLI's default output and the magics' ``text/plain``)."""

from __future__ import annotations

from kernelext.core.checkpointinfo import CheckpointDiff, CheckpointInfo, OpenFile, Process
from kernelext.units import human_size

_US_FIELDS = (("freezing_time", "Freezing time"), ("frozen_time", "Frozen time"),
              ("memdump_time", "Memdump time"), ("memwrite_time", "Memwrite time"))
_COUNT_FIELDS = (("pages_scanned", "Pages scanned"), ("pages_written", "Pages written"))


def _micros(us: int) -> str:
    """CRIU's microseconds as checkpointctl prints them."""
    return f"{us}µs" if us < 1000 else f"{us / 1000:.3f}ms" if us < 1_000_000 else f"{us / 1e6:.3f}s"


def _branch(lines: list[str], items: list[str], indent: str) -> None:
    """``items`` as the children of the line above, with checkpointctl's box-drawing branches."""
    for i, item in enumerate(items):
        last = i == len(items) - 1
        head, *rest = item.split("\n")
        lines.append(f"{indent}{'└── ' if last else '├── '}{head}")
        lines.extend(f"{indent}{'    ' if last else '│   '}{line}" for line in rest)


def _node(title: str, children: list[str]) -> str:
    lines = [title]
    _branch(lines, children, "")
    return "\n".join(lines)


def file_text(f: OpenFile) -> str:
    at = f" (offset {f.position})" if f.position else ""
    return f"[{f.fd}] {f.kind.value} {f.name}{at}"


def _process_node(p: Process) -> str:
    state = "" if p.state == "Alive" else f" ({p.state})"
    children: list[str] = []
    if p.files:
        children.append(_node("Open files", [file_text(f) for f in p.files]))
    if p.memory:
        children.append(_node("Memory (dumped / mapped)", [
            f"{m.kind.value}: {human_size(m.dumped)} / {human_size(m.virtual)} in {m.mappings} mappings"
            for m in p.memory]))
    children.extend(_process_node(c) for c in sorted(p.children, key=lambda c: c.pid))
    return _node(f"[{p.pid}{state}] {p.command}", children)


def inspect_text(info: CheckpointInfo) -> str:
    """checkpointctl's tree: the container, sizes, CRIU's statistics, processes, namespaces, the rootfs diff."""
    items = [f"Image: {info.image}", f"ID: {info.container_id}", f"Runtime: {info.runtime}",
             f"Created: {info.created}", f"CRIU image version: {info.criu_version}",
             _node(f"Checkpoint size: {human_size(info.size)}",
                   [f"Memory pages size: {human_size(info.memory_pages_size)}"])]
    if info.statistics:
        stats = [f"{label}: {_micros(info.statistics.get(key, 0))}" for key, label in _US_FIELDS]
        stats += [f"{label}: {info.statistics.get(key, 0)}" for key, label in _COUNT_FIELDS]
        items.append(_node("CRIU dump statistics", stats))
    if info.namespaces:
        items.append(_node("Namespaces (CRIU IDs)", [f"{k}: {v}" for k, v in info.namespaces.items()]))
    if info.processes:
        items.append(_node("Process tree", [_process_node(p) for p in sorted(info.tree, key=lambda p: p.pid)]))
    changes = [f"{c.path} ({human_size(c.size)})" if c.type == "file" else f"{c.path} ({c.type})"
               for c in info.changed_files]
    changes += [f"{path} (deleted)" for path in info.deleted_files]
    if changes:
        items.append(_node("Root FS changes", changes))
    return f"Displaying container checkpoint tree view from {info.source}\n\n" + _node(
        info.container_name or "Container", items)


def diff_text(diff: CheckpointDiff) -> str:
    """What changed between two checkpoints, grouped as checkpointctl's diff groups it."""
    items: list[str] = []
    for title, paths in (("Files added", diff.files_added), ("Files changed", diff.files_changed),
                         ("Files no longer changed", diff.files_removed), ("Files deleted", diff.deleted_added),
                         ("Files no longer deleted", diff.deleted_removed)):
        if paths:
            items.append(_node(title, paths))
    for title, procs in (("Processes started", diff.processes_started), ("Processes ended", diff.processes_ended)):
        if procs:
            items.append(_node(title, [f"[{p.pid}] {p.command}" for p in procs]))
    for change in diff.processes_changed:
        children = [f"memory {kind}: {'+' if delta > 0 else '-'}{human_size(abs(delta))}"
                    for kind, delta in change.memory.items()]
        children += [f"opened {file_text(f)}" for f in change.opened]
        children += [f"closed {file_text(f)}" for f in change.closed]
        items.append(_node(f"Process [{change.pid}] {change.comm}", children))
    if not items:
        items.append("no changes")
    return _node(f"{diff.a} -> {diff.b}", items)
