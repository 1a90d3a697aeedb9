"""The CLI's checkpoint-history commands: ``checkpoint ls|rm|prune``, ``restore --from``, and ``system df``
(where the histories' space shows).

As the other handlers (:mod:`kernelext.cli.commands`): parse results in, the command layer
(:mod:`kernelext.domain.checkpoints`) called, podman's text and exit codes out.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from kernelext.cli.commands import _template, command, out, render, render_rows
from kernelext.cli.format import since, table
from kernelext.domain.engine import Engine
from kernelext.units import human_size

if TYPE_CHECKING:  # the local core's: imported by the commands that use it, never by a remote one
    from kernelext.core.history import CheckpointEntry
    from kernelext.core.runtime import Runtime

LS_HEADERS = ["ENTRY", "NAME", "PARENT", "CREATED", "SIZE", "FROZEN", "PAGES"]
PRUNE_WARNING = ("WARNING! This will remove all but the newest checkpoint of every container.\n"
                 "Are you sure you want to continue? [y/N] ")


def ls_row(entry: CheckpointEntry, names: dict[str, str]) -> list[str]:
    """One row of ``checkpoint ls``: podman's units (sizes in powers of 1000, times ago)."""
    stats = entry.criu_statistics
    frozen = stats.get("frozen_time")
    return [str(entry.number), entry.name, entry.parent_label(names), since(entry.created), human_size(entry.size),
            f"{frozen / 1000:.1f}ms" if frozen is not None else "", str(stats.get("pages_written", ""))]


@command("checkpoint-ls")
def cmd_checkpoint_ls(rt: Runtime, args: argparse.Namespace) -> int:
    from kernelext.domain import checkpoints as history

    template = _template(args, "checkpoints")
    entries = history.entries(rt, args.container)
    if args.quiet:
        for entry in entries:
            out(str(entry.number))
        return 0

    def text(_rows: object) -> str:
        names = {c.id: c.name for c in rt.list(all=True)}
        return table(LS_HEADERS, [ls_row(e, names) for e in entries])
    render_rows(args, template, [e.inspect() for e in entries], text)
    return 0


@command("checkpoint-rm")
def cmd_checkpoint_rm(rt: Runtime, args: argparse.Namespace) -> int:
    from kernelext.domain import checkpoints as history

    return render(history.remove(rt, args.container, args.entries))


@command("checkpoint-prune")
def cmd_checkpoint_prune(rt: Runtime, args: argparse.Namespace) -> int:
    from kernelext.domain import checkpoints as history

    if not args.containers and not args.force:
        sys.stdout.write(PRUNE_WARNING)
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    reports = history.prune(rt, args.containers, all=args.all)
    freed = sum(r.entry.size for r in reports if r.error is None and r.entry is not None)
    code = render(reports, lambda r: f"{r.container.name if r.container else r.id}:{r.entry.number}"
                  if isinstance(r, history.CheckpointRemoveReport) and r.entry else r.shown)
    if code == 0:
        out(f"Total reclaimed space: {human_size(freed)}")
    return code


def restore_from(rt: Runtime, args: argparse.Namespace, options: dict[str, Any]) -> int:
    """``restore CTR --from ENTRY``: in place (prints the container, as restore does), or with ``--name``
    a new container (prints its ID, as ``restore --import -n`` does)."""
    from kernelext.domain import checkpoints as history

    name = args.containers[0]
    if args.name:
        created = history.branch(rt, name, args.from_, args.name, args.publish or None, **options)
        if args.print_stats:
            out(json.dumps({"container_statistics": [created.statistics]}, indent=4))
        else:
            out(created.id)
        return 0
    ctr = history.restore_entry(rt, name, args.from_, **options)
    if args.print_stats:
        out(json.dumps({"container_statistics": [ctr.statistics]}, indent=4))
    else:
        out(name)
    return 0



def usage_rows(engine: Engine) -> list[dict[str, Any]]:
    """``system df``'s rows on an engine, with podman's field names (the CLI's template, the magic's table)."""
    return [{"Type": r.kind, "Total": r.total, "Active": r.active, "Size": human_size(r.size),
             "Reclaimable": f"{human_size(r.reclaimable)} ({100 * r.reclaimable // r.size if r.size else 0}%)",
             "RawSize": r.size, "RawReclaimable": r.reclaimable} for r in engine.disk_usage()]


@command("system-df", engine=True)
def cmd_system_df(engine: Engine, args: argparse.Namespace) -> int:
    """podman's ``system df`` rows, and the checkpoint histories' (what ``checkpoint prune`` reclaims)."""
    template = _template(args, "df")
    rows = usage_rows(engine)
    render_rows(args, template, rows, lambda shown: table(
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        [[r["Type"], str(r["Total"]), str(r["Active"]), r["Size"], r["Reclaimable"]] for r in shown]))
    return 0
