"""The checkpoint history's commands: ``checkpoint ls|rm|prune``, restore from an entry, branch, the tree.

The front ends (CLI, magics, the timeline widget) call these and only render
(docs/architecture.md §1 and §4, "Checkpoint history").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernelext.core.history import CheckpointEntry, EntryRef, head, store_size
from kernelext.core.state import ContainerStatus
from kernelext.domain.reports import Report
from kernelext.errors import InvalidArgumentError, KernelextError

if TYPE_CHECKING:
    from kernelext.core.container import Container
    from kernelext.core.ports import PortMapping
    from kernelext.core.runtime import Runtime


@dataclass
class CheckpointRemoveReport(Report):
    """One entry removed (``entry``) or not (``error``)."""

    entry: CheckpointEntry | None = None


@dataclass
class TreeNode:
    """An entry and what descends from it: its own later entries and other containers restored from it."""

    entry: CheckpointEntry
    depth: int
    #: Containers restored from this entry (branches) that have made no entry of their own yet.
    branches: list[str] = field(default_factory=list)


def entries(rt: Runtime, name: str) -> list[CheckpointEntry]:
    """``checkpoint ls CTR``."""
    return rt.get(name).checkpoints()


def remove(rt: Runtime, name: str, which: Sequence[str]) -> list[CheckpointRemoveReport]:
    """``checkpoint rm CTR ENTRY...``: every entry looked up first, so a typo removes nothing."""
    ctr = rt.get(name)
    for key in which:
        ctr.checkpoint_entry(key)
    done: list[CheckpointRemoveReport] = []
    for key in which:
        try:
            done.append(CheckpointRemoveReport(ctr.id, key, None, ctr, entry=ctr.remove_checkpoint(key)))
        except KernelextError as exc:
            done.append(CheckpointRemoveReport(ctr.id, key, exc, ctr))
    return done


def prune(rt: Runtime, names: Sequence[str], *, all: bool = False) -> list[CheckpointRemoveReport]:
    """``checkpoint prune [CTR...]``: all but each container's newest entry (``all``: every entry); no names:
    every container of the store."""
    chosen = [rt.get(n) for n in names] if names else rt.list(all=True)
    done: list[CheckpointRemoveReport] = []
    for ctr in chosen:
        listed = ctr.checkpoints()
        for entry in listed if all else listed[:-1]:
            try:
                ctr.remove_checkpoint(entry.number)
                done.append(CheckpointRemoveReport(ctr.id, ctr.name, None, ctr, entry=entry))
            except KernelextError as exc:
                done.append(CheckpointRemoveReport(ctr.id, ctr.name, exc, ctr))
    return done


def restore_entry(rt: Runtime, name: str, which: str | int, *, stop: bool = False, **options: Any) -> Container:
    """Roll the container back to an entry, in place (``stop``: a running one is stopped first, as the
    timeline's button does; the command line asks for a stopped one, as podman's restore)."""
    ctr = rt.get(name)
    ctr.checkpoint_entry(which)  # an unknown entry stops nothing
    if stop and ctr.reload().status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED):
        ctr.stop()
    ctr.restore(from_=which, **options)
    return ctr


def branch(rt: Runtime, name: str, which: str | int, new_name: str,
           publish: Iterable[str | PortMapping] | None = None, **options: Any) -> Container:
    """``restore CTR --from ENTRY --name NEW [-p ...]``: a new container restored from the entry."""
    if not new_name:
        raise InvalidArgumentError("a branch needs a name", operation="restore")
    created: Container = rt.get(name).restore(from_=which, name=new_name, publish=publish, **options)
    return created


def export(rt: Runtime, name: str, which: str | int, path: str | Path, compress: str | None = None) -> Path:
    """An entry written as an archive (the timeline's "export")."""
    return rt.get(name).export_checkpoint(which, path, compress)


def checkpoint(rt: Runtime, name: str, *, entry_name: str | None = None, **options: Any) -> CheckpointEntry:
    """Checkpoint one container into its history (the timeline's and the magics' "checkpoint now")."""
    made = rt.get(name).checkpoint(name=entry_name, **options)
    if not isinstance(made, CheckpointEntry):
        raise InvalidArgumentError("this checkpoint made no history entry", operation="checkpoint")
    return made


def tree(rt: Runtime, name: str) -> list[TreeNode]:
    """The container's entries depth first, each under its parent; containers restored from an entry
    (branches) are named under it. An entry whose parent is gone or another container's is a root."""
    ctr = rt.get(name)
    own = ctr.checkpoints()
    numbers = {e.number for e in own}
    children: dict[int | None, list[CheckpointEntry]] = {}
    for entry in own:
        parent = entry.parent.number if entry.parent and entry.parent.container_id == ctr.id \
            and entry.parent.number in numbers else None
        children.setdefault(parent, []).append(entry)
    branches: dict[int, list[str]] = {}
    for other in rt.list(all=True):
        if other.id == ctr.id:
            continue
        origin = _origin(other)
        if origin is not None and origin.container_id == ctr.id:
            branches.setdefault(origin.number, []).append(other.name)
    nodes: list[TreeNode] = []

    def walk(parent: int | None, depth: int) -> None:
        for entry in children.get(parent, []):
            nodes.append(TreeNode(entry, depth, sorted(branches.get(entry.number, []))))
            walk(entry.number, depth + 1)
    walk(None, 0)
    return nodes


def _origin(ctr: Container) -> EntryRef | None:
    """The other container's entry this one was branched from: its first entry's parent, else its head."""
    listed = ctr.checkpoints()
    if listed:
        return listed[0].parent
    return head(ctr)


def history_size(rt: Runtime) -> tuple[int, int]:
    """(entries, bytes) of the whole store's checkpoint histories (``info``, ``system df``)."""
    return store_size(rt.opts)
