"""``CheckpointTimeline``: a container's checkpoint history as a tree (docs/architecture.md §4).

Each entry shows its time, name, size and CRIU's figures, under the entry it
descends from (branches: other containers restored from an entry are named
under it). Buttons: checkpoint now (optionally named), and per entry restore
in place, branch (a new container from it), export (into the folder shown)
and delete. Every action goes through :mod:`kernelext.domain.checkpoints`;
the tree follows the store's events, so a checkpoint made by any process
appears. Selecting entries shows, below the tree, what one holds (its
processes, open files, memory by kind) or what changed between two (files,
processes, memory per process): computed here from
:mod:`kernelext.domain.checkpointinfo`, rendered by the browser.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
from traitlets import Dict, List, Unicode

from kernelext.cli.checkpointtree import file_text
from kernelext.core.checkpointinfo import CheckpointDiff, CheckpointInfo, MemoryKind, iter_tree
from kernelext.core.container import Container
from kernelext.core.history import CheckpointEntry
from kernelext.domain import checkpointinfo
from kernelext.domain import checkpoints as history
from kernelext.domain.reports import raise_for
from kernelext.errors import KernelextError
from kernelext.units import human_size
from kernelext.widgets._assets import css, esm
from kernelext.widgets._follow import ContainerFollower
from kernelext.widgets._registry import track

#: What the browser may ask for, and whether it names an entry.
ENTRY_ACTIONS = ("restore", "branch", "export", "delete")
ACTIONS = ("checkpoint", *ENTRY_ACTIONS)
#: The state in which the container can be checkpointed now.
CHECKPOINTABLE = "running"
#: The browser's selection: one entry is inspected, two are compared.
SELECT = "select"
MAX_SELECTED = 2


def node_model(node: history.TreeNode) -> dict[str, Any]:
    """What the browser gets for one entry (JSON only: numbers preformatted where units matter)."""
    entry: CheckpointEntry = node.entry
    stats = entry.criu_statistics
    return {"number": entry.number, "name": entry.name, "depth": node.depth, "parent": entry.parent_label(),
            "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.created)), "size": entry.size,
            "human_size": human_size(entry.size),
            "frozen_ms": None if entry.frozen_ms is None else round(entry.frozen_ms, 1),
            "memdump_ms": round(stats.get("memdump_time", 0) / 1000, 1),
            "memwrite_ms": round(stats.get("memwrite_time", 0) / 1000, 1),
            "pages_scanned": stats.get("pages_scanned"), "pages_written": stats.get("pages_written"),
            "leave_running": entry.leave_running, "export": entry.export, "branches": node.branches}


def _signed(delta: int) -> str:
    return f"{'+' if delta > 0 else '-'}{human_size(abs(delta))}"


def inspect_model(info: CheckpointInfo, entries: list[int]) -> dict[str, Any]:
    """What the browser shows for one selected entry: the process tree (depth first, each with its depth),
    each process's open files and memory, the memory of all by kind, the files written."""
    totals: dict[str, list[int]] = {}
    processes = []
    for depth, p in iter_tree(info.tree):
        processes.append({"pid": p.pid, "depth": depth, "command": p.command, "state": p.state,
                          "files": [file_text(f) for f in p.files],
                          "memory": [{"kind": m.kind.value, "dumped": human_size(m.dumped),
                                      "mapped": human_size(m.virtual)} for m in p.memory]})
        for m in p.memory:
            total = totals.setdefault(m.kind.value, [0, 0])
            total[0] += m.dumped
            total[1] += m.virtual
    order = [k.value for k in MemoryKind]
    return {"kind": "inspect", "entries": entries, "title": info.source, "processes": processes,
            "memory": [{"kind": k, "dumped": human_size(totals[k][0]), "mapped": human_size(totals[k][1])}
                       for k in order if k in totals],
            "files": [c.path for c in info.changed_files if c.type != "dir"], "deleted": info.deleted_files}


def diff_model(diff: CheckpointDiff, entries: list[int]) -> dict[str, Any]:
    """What the browser shows for two selected entries: files, processes, memory grown per process."""
    return {"kind": "diff", "entries": entries, "title": f"{diff.a} \u2192 {diff.b}",
            "files": [{"change": change, "paths": paths} for change, paths in (
                ("added", diff.files_added), ("changed", diff.files_changed),
                ("no longer changed", diff.files_removed), ("deleted", diff.deleted_added),
                ("no longer deleted", diff.deleted_removed)) if paths],
            "started": [{"pid": p.pid, "command": p.command} for p in diff.processes_started],
            "ended": [{"pid": p.pid, "command": p.command} for p in diff.processes_ended],
            "changed": [{"pid": c.pid, "comm": c.comm,
                         "memory": [{"kind": k, "delta": _signed(v)} for k, v in c.memory.items()],
                         "opened": [file_text(f) for f in c.opened], "closed": [file_text(f) for f in c.closed]}
                        for c in diff.processes_changed],
            "empty": diff.empty}


class CheckpointTimeline(anywidget.AnyWidget):
    _esm = esm("controls.js", "timeline.js")
    _css = css("timeline.css")

    #: The entries depth first, each with its ``depth`` in the tree (:func:`node_model`).
    nodes: List[Any] = List().tag(sync=True)
    status = Unicode("").tag(sync=True)
    #: The actions the buttons may ask for now.
    allowed = List(Unicode()).tag(sync=True)
    message = Unicode("").tag(sync=True)
    #: Where "export" writes its archive; the browser shows it and may change it.
    export_dir = Unicode("").tag(sync=True)
    #: What the selected entries hold or how they differ (:func:`inspect_model`, :func:`diff_model`);
    #: ``{"kind": "loading"|"error", "entries": [...]}`` meanwhile or on failure, ``{}`` with nothing selected.
    detail = Dict().tag(sync=True)

    def __init__(self, container: Container, *, export_dir: str | os.PathLike[str] = ".", **kwargs: Any) -> None:
        super().__init__(export_dir=str(Path(export_dir).absolute()), **kwargs)
        self.container = container
        # The newest selection wins: a slower, older one's result is dropped.
        self._selection_lock = threading.Lock()
        self._selection_serial = 0
        self.refresh()
        self.on_msg(self._on_message)
        self._follower = ContainerFollower(container, lambda c, e: self.refresh())
        track(self)

    def __repr__(self) -> str:
        return f"CheckpointTimeline({self.container.name}: {len(self.nodes)} entries)"

    @property
    def _rt(self) -> Any:
        return self.container.runtime

    def refresh(self) -> None:
        try:
            nodes = [node_model(n) for n in history.tree(self._rt, self.container.id)]
        except KernelextError:
            nodes = []  # removed: the panel says so; the tree empties
        status = self.container.status.value
        shown = {n["number"] for n in nodes}
        with self.hold_sync():
            if not shown.issuperset(self.detail.get("entries", [])):
                self.detail = {}  # a selected entry was deleted
            self.nodes = nodes
            self.status = status
            # CRIU needs root; entries can be acted on whatever the container's state.
            self.allowed = [] if self._rt.namespace.rootless else (
                (["checkpoint"] if status == CHECKPOINTABLE else []) + ([*ENTRY_ACTIONS] if nodes else []))

    # The buttons' handlers: each one call of the command layer (tests call them directly).
    def checkpoint_now(self, name: str = "") -> CheckpointEntry:
        """A checkpoint that leaves the container running, named ``name`` if given."""
        return history.checkpoint(self._rt, self.container.id, entry_name=name or None, leave_running=True)

    def restore_entry(self, number: int) -> Container:
        """Roll the container back to entry ``number`` (stopped first if it runs)."""
        return history.restore_entry(self._rt, self.container.id, number, stop=True)

    def branch(self, number: int, name: str) -> Container:
        """A new container ``name`` restored from entry ``number``, beside this one."""
        return history.branch(self._rt, self.container.id, number, name)

    def export_entry(self, number: int) -> Path:
        """Entry ``number`` as an archive in the export folder."""
        folder = Path(self.export_dir).expanduser()
        if not folder.is_dir():
            raise NotADirectoryError(f"export folder {folder} does not exist")
        target = folder / f"{self.container.name}-{number}-{time.strftime('%Y%m%d-%H%M%S')}.tar.zst"
        return history.export(self._rt, self.container.id, number, target)

    def delete(self, number: int) -> str:
        """Delete entry ``number``; what the message line says."""
        raise_for(history.remove(self._rt, self.container.id, [str(number)]))
        return f"checkpoint {number} deleted"

    def select(self, numbers: list[int]) -> dict[str, Any]:
        """The detail of the selected entries (the browser's checkboxes): one is inspected, two compared,
        the older first. Slow on a large checkpoint: the browser's selection runs it in a thread."""
        chosen = sorted(set(numbers))[:MAX_SELECTED]
        if not chosen:
            return {}
        rt, ctr = self._rt, self.container.id
        if len(chosen) == 1:
            return inspect_model(checkpointinfo.inspect_entry(rt, ctr, chosen[0]), chosen)
        return diff_model(checkpointinfo.diff_entries(rt, (ctr, chosen[0]), (ctr, chosen[1])), chosen)

    def _on_select(self, numbers: list[int]) -> None:
        with self._selection_lock:
            self._selection_serial += 1
            serial = self._selection_serial
        self.detail = {"kind": "loading", "entries": sorted(numbers)} if numbers else {}

        def run() -> None:
            try:
                model = self.select(numbers)
            except (KernelextError, OSError) as exc:
                model = {"kind": "error", "entries": sorted(numbers), "error": str(exc)}
            with self._selection_lock:
                if serial == self._selection_serial:
                    self.detail = model
        if numbers:
            threading.Thread(target=run, daemon=True, name="kernelext-timeline-select").start()

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        action = content.get("type")
        if action == SELECT:  # reading entries needs no right the buttons need
            self._on_select([int(n) for n in content.get("entries", [])][:MAX_SELECTED])
            return
        if action not in ACTIONS or action not in self.allowed:
            return
        if action == "export" and content.get("folder"):
            self.export_dir = str(content["folder"])
        number = int(content.get("entry", 0))
        name = str(content.get("name", "")).strip()
        work: dict[str, Callable[[], str]] = {
            "checkpoint": lambda: f"checkpoint {self.checkpoint_now(name).number} made",
            "restore": lambda: f"{self.restore_entry(number).name} restored from checkpoint {number}",
            "branch": lambda: f"{self.branch(number, name).name} branched from checkpoint {number}",
            "export": lambda: f"exported to {self.export_entry(number)}",
            "delete": lambda: self.delete(number),
        }

        def run() -> None:
            self.message = ""
            try:
                self.message = work[str(action)]()
            except (KernelextError, OSError) as exc:
                self.message = f"{action} failed: {exc}"
            self.refresh()
        threading.Thread(target=run, daemon=True, name=f"kernelext-timeline-{action}").start()

    def close(self) -> None:
        self._follower.stop()
        super().close()
