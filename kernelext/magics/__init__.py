"""The IPython extension: ``%load_ext kernelext``.

Registers ``%container``/``%%container`` (and ``%ctr``), the rich displays of
containers and lists, and tab completion; ``%unload_ext`` undoes all of it
and stops every live output thread. An interrupt of the idle kernel stops
the live areas' follows (:mod:`kernelext.magics.interrupt`).
"""

from __future__ import annotations

import shlex
from typing import Any

from IPython.core.completer import CompletionContext, SimpleCompletion, SimpleMatcherResult, context_matcher

from kernelext.magics import display, interrupt
from kernelext.magics.container_magics import WIDGET_COMMANDS, ContainerMagics

__all__ = ["ContainerMagics", "load", "unload"]

MAGIC_PREFIXES = ("%%container", "%%ctr", "%container", "%ctr")
_state: dict[str, Any] = {}


def _candidates(magics: ContainerMagics, words: list[str], current: str) -> list[str]:
    from kernelext.cli.parser import GROUPS, UsageError, command_names, command_parser

    group = words[0] if words and words[0] in GROUPS else None
    position = words[1:] if group else words
    if not position:
        return command_names(group) + (["exec", "run", "write", *WIDGET_COMMANDS] if words == [] else [])
    if current.startswith("-"):
        try:
            parser = command_parser(position[0], group)
        except UsageError:
            return []
        return sorted(opt for opt in parser._option_string_actions if opt.startswith("--") or len(opt) == 2)
    names = [c.name for c in magics.rt.list()]
    if position[0] in ("run", "create"):
        return [name for image in magics.rt.list_images() for name in image.names] + ["busybox"]
    return names


def _matcher(magics: ContainerMagics) -> Any:
    @context_matcher()  # type: ignore[untyped-decorator]
    def complete_container(context: CompletionContext) -> SimpleMatcherResult:
        line = context.text_until_cursor.lstrip()
        prefix = next((p for p in MAGIC_PREFIXES if line.startswith(p + " ")), None)
        if prefix is None:
            return {"completions": [], "suppress": False}
        try:
            words = shlex.split(line[len(prefix):])
        except ValueError:
            return {"completions": [], "suppress": False}
        current = context.token
        if words and not line.endswith(" ") and words[-1] == current:
            words = words[:-1]
        found = sorted({c for c in _candidates(magics, words, current) if c.startswith(current)})
        return {"completions": [SimpleCompletion(c, type="kernelext") for c in found], "suppress": bool(found)}
    return complete_container


def load(ip: Any) -> None:
    if "magics" in _state:
        return
    magics = ContainerMagics(shell=ip)
    ip.register_magics(magics)
    display.register(ip)
    matcher = _matcher(magics)
    ip.Completer.custom_matchers.append(matcher)
    _state.update(magics=magics, matcher=matcher, sigint=interrupt.install(ip))


def unload(ip: Any) -> None:
    magics = _state.pop("magics", None)
    matcher = _state.pop("matcher", None)
    if magics is None:
        return
    interrupt.remove(ip, _state.pop("sigint", None))
    magics.close()
    for kind in ("line", "cell"):
        for name in ("container", "ctr"):
            ip.magics_manager.magics[kind].pop(name, None)
    display.unregister(ip)
    if matcher in ip.Completer.custom_matchers:
        ip.Completer.custom_matchers.remove(matcher)
