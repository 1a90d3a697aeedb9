"""``container clone``: a new container with another's configuration (podman's ``podman container clone``).

The clone is made from the configuration, not from the running process or its
filesystem changes: a fresh layer of the same (or the given) image, the same
command, environment, mounts, ports, limits and security, new anonymous
volumes, state ``created``. Resource flags given here replace the original's.
"""

from __future__ import annotations

import os
import time
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from kernelext.core.state import ContainerConfig
from kernelext.errors import InvalidArgumentError
from kernelext.oci.resources import Resources
from kernelext.storage.images import PullPolicy
from kernelext.storage.volumes import Volume

if TYPE_CHECKING:
    from kernelext.core.container import Container
    from kernelext.core.runtime import Runtime

#: podman names a clone ``NAME-clone``, then ``NAME-clone1``, ``NAME-clone2``, ... while that is taken.
CLONE_SUFFIX = "-clone"
#: The resource flags ``clone`` takes (``Resources.build``'s keywords) and the fields each sets (a new
#: memory limit without ``--memory-swap`` takes podman's default swap again).
RESOURCE_FIELDS = {"memory": ("memory", "memory_swap"), "memory_swap": ("memory_swap",),
                   "memory_reservation": ("memory_reservation",), "cpus": ("nano_cpus",),
                   "cpu_shares": ("cpu_shares",), "cpu_quota": ("cpu_quota",), "cpu_period": ("cpu_period",),
                   "cpuset_cpus": ("cpuset_cpus",), "pids_limit": ("pids_limit",),
                   "device_read_bps": ("device_read_bps",)}


def clone_name(runtime: Runtime, original: str) -> str:
    name, n = f"{original}{CLONE_SUFFIX}", 0
    while runtime.exists(name):
        n += 1
        name = f"{original}{CLONE_SUFFIX}{n}"
    return name


def _resources(current: Resources, given: dict[str, Any]) -> Resources:
    """The original's limits with the given flags' values in place of its own."""
    unknown = set(given) - set(RESOURCE_FIELDS)
    if unknown:
        raise TypeError(f"clone() got an unexpected keyword argument {min(unknown)!r}")
    if not given:
        return current
    if "memory_swap" in given and "memory" not in given and current.memory:
        given = {**given, "memory": current.memory}  # a swap limit is checked against the memory limit
    built = Resources.build(**given)
    changed = {name for key in given for name in RESOURCE_FIELDS[key]}
    return replace(current, **{f.name: getattr(built, f.name) for f in fields(Resources) if f.name in changed})


def clone(runtime: Runtime, source: Container, *, name: str | None = None, image: str | None = None,
          **resources: Any) -> Container:
    """A new container (state ``created``) with ``source``'s configuration."""
    from kernelext.core.runtime import _valid_name

    if name is not None and not _valid_name(name):
        raise InvalidArgumentError(f"invalid container name {name!r}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    config = ContainerConfig.from_json(source.config.to_json())  # a deep copy
    config.id = os.urandom(32).hex()
    config.name = name or clone_name(runtime, source.name)
    config.created_at = time.time()
    config.resources = _resources(config.resources, resources)
    if image is not None:
        img = runtime.image_for(image, PullPolicy.MISSING)
        config.image_id, config.image_name = img.id, img.name_for(image)
    created: list[Volume] = []  # the clone's own anonymous volumes: gone again if it is not made
    try:
        config.mounts = runtime.volumes.materialize(config.mounts, created)
        return runtime.add(config, operation="clone")
    except BaseException:
        runtime.volumes.discard(created)
        raise
