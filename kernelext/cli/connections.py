"""``kernelext system connection add/ls/rm/default/rename``: podman's connection store, podman's flags.

The store is podman's own (:mod:`kernelext.connections`): a connection added here is one
``podman system connection ls`` lists, and the other way round.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from kernelext.cli.format import table
from kernelext.cli.template import Template
from kernelext.connections import ConnectionStore

#: The actions of ``system connection`` and their aliases (podman's).
ACTIONS = {"add": (), "ls": ("list",), "rm": ("remove",), "default": (), "rename": ("mv",)}


def connection_flags(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="Record destination for the Podman service")
    add.add_argument("-d", "--default", action="store_true", help="set connection to be default")
    add.add_argument("--identity", dest="key_file", default="", help="path to SSH identity file")
    add.add_argument("name", metavar="NAME")
    add.add_argument("destination", metavar="DESTINATION")
    ls = actions.add_parser("ls", aliases=["list"], help="List destination for the Podman service(s)")
    ls.add_argument("--format", help="'json' or a Go template")
    ls.add_argument("-q", "--quiet", action="store_true", help="print only the names")
    rm = actions.add_parser("rm", aliases=["remove"], help="Delete named destination")
    rm.add_argument("-a", "--all", action="store_true", help="remove all connections")
    rm.add_argument("name", nargs="?", metavar="NAME")
    default = actions.add_parser("default", help="Set named destination as default")
    default.add_argument("name", metavar="NAME")
    rename = actions.add_parser("rename", aliases=["mv"], help="Rename a destination")
    rename.add_argument("old", metavar="OLD")
    rename.add_argument("new", metavar="NEW")


def _action(name: str) -> str:
    return next(key for key, aliases in ACTIONS.items() if name == key or name in aliases)


def system_connection(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """One action on podman's connection store; ``ls`` prints podman's table (or JSON, or a template)."""
    store = ConnectionStore()
    action = _action(args.action)
    if action == "add":
        store.add(args.name, args.destination, args.key_file, default=args.default)
    elif action == "rm":
        store.remove(args.name, all=args.all)
    elif action == "default":
        store.set_default(args.name)
    elif action == "rename":
        store.rename(args.old, args.new)
    else:
        rows: list[dict[str, Any]] = [{"Name": c.name, "URI": c.uri, "Identity": c.identity, "IsMachine": False, "Default": c.default}
                for c in store.list()]
        if args.quiet:
            for row in rows:
                out(row["Name"])
        elif args.format == "json":
            out(json.dumps(rows, indent=4))
        elif args.format:
            template = Template.parse(args.format, "connection ls")
            for row in rows:
                out(template.render(row))
        else:
            out(table(["Name", "URI", "Identity", "Default"],
                      [[r["Name"], r["URI"], r["Identity"], str(r["Default"]).lower()] for r in rows]))
    return 0
