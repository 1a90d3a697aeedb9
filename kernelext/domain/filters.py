"""podman's container filters (``--filter key=value``) and ``ps --sort`` keys.

Several values of one key match any of them; several keys must all match
(podman's ``GenerateContainerFilterFuncs``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kernelext.errors import InvalidArgumentError

if TYPE_CHECKING:
    from kernelext.core.container import Container
    from kernelext.core.runtime import Runtime

Predicate = Callable[["Container"], bool]
Filters = dict[str, list[str]]

#: podman's status words (``define.StringToContainerStatus``); ``stopped`` is shown as ``exited``.
STATUS_WORDS = ("created", "running", "stopped", "paused", "exited", "unknown", "initialized", "removing",
                "stopping")
#: ``ps --sort`` keys podman accepts.
SORT_KEYS = ("command", "created", "id", "image", "names", "runningfor", "size", "status")


def parse_filters(items: Iterable[str]) -> Filters:
    """``["name=web", "status=exited"]`` as ``{"name": ["web"], "status": ["exited"]}``."""
    filters: Filters = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f'invalid filter "{item}"')
        filters.setdefault(key, []).append(value)
    return filters


def _regex_any(patterns: list[str]) -> Callable[[str], bool]:
    compiled = [re.compile(p) for p in patterns]
    return lambda text: any(p.search(text) for p in compiled)


def _labels_match(wanted: list[str], labels: dict[str, str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _shown_status(ctr: Container) -> str:
    from kernelext.core.state import ContainerStatus

    status = ctr.status
    return "exited" if status is ContainerStatus.STOPPED else status.value


def _created_of(rt: Runtime, names: list[str]) -> float:
    return min(rt.get(name).config.created_at for name in names)


def predicate(rt: Runtime, key: str, values: list[str]) -> Predicate:
    """One filter key's test; a malformed value is refused before anything is done (podman's messages)."""
    from kernelext.core.state import ContainerStatus, RestartPolicyName  # the local engine's only: not at import

    if key == "id":
        match = _regex_any(values)
        return lambda c: match(c.id)
    if key == "name":
        match = _regex_any(values)
        return lambda c: match(c.name)
    if key == "label":
        return lambda c: _labels_match(values, c.config.labels)
    if key == "exited":
        try:
            codes = {int(v) for v in values}
        except ValueError:
            raise InvalidArgumentError(f"exited code out of range {values!r}") from None
        return lambda c: c.status in (ContainerStatus.EXITED, ContainerStatus.STOPPED) and c.exit_code in codes
    if key == "status":
        for value in values:
            if value not in STATUS_WORDS:
                raise InvalidArgumentError(f"invalid argument: unknown container state: {value}")
        wanted = {"exited" if v == "stopped" else v for v in values}
        return lambda c: _shown_status(c) in wanted
    if key == "ancestor":
        return lambda c: any(v in (c.config.image_id, c.image, f"{c.image}:latest") or
                             (c.image == v.removesuffix(":latest")) for v in values)
    if key == "before":
        before = _created_of(rt, values)
        return lambda c: c.config.created_at < before
    if key == "since":
        since = _created_of(rt, values)
        return lambda c: c.config.created_at > since
    if key == "restart-policy":
        known = {p.value for p in RestartPolicyName} | {"none"}
        invalid = [v for v in values if v not in known]
        if invalid:
            what = "invalid restart policies" if len(invalid) > 1 else "invalid restart policy"
            raise InvalidArgumentError(f"{', '.join(invalid)} {what}")
        return lambda c: any(c.config.restart_policy.name.value == ("no" if v == "none" else v) for v in values)
    raise InvalidArgumentError(f"{key} is an invalid filter")


def matcher(rt: Runtime, filters: Filters) -> Predicate:
    """All keys' tests at once."""
    tests = [predicate(rt, key, values) for key, values in filters.items()]
    return lambda c: all(test(c) for test in tests)


def sort_key(key: str) -> Callable[[Container], Any]:
    """``ps --sort``: what podman orders rows by."""
    keys: dict[str, Callable[[Container], Any]] = {
        "command": lambda c: " ".join(c.config.args),
        "created": lambda c: -c.config.created_at,  # newest first, as podman
        "id": lambda c: c.id,
        "image": lambda c: c.image,
        "names": lambda c: c.name,
        "runningfor": lambda c: -c.config.created_at,
        "size": lambda c: 0,
        "status": lambda c: c.status.value,
    }
    if key not in keys:
        raise InvalidArgumentError(f"invalid argument \"{key}\" for \"--sort\" flag: must be one of "
                                   f"{', '.join(SORT_KEYS)}")
    return keys[key]
