"""The keyword arguments of ``Runtime.create`` for limits, security and identity, routed to the
dataclasses that hold them (kernelext.oci.resources, .security, .identity), with the host's checks."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelext.errors import InvalidArgumentError
from kernelext.oci.cgroups import CgroupOptions
from kernelext.oci.identity import Identity
from kernelext.oci.monitoring import MonitorOptions
from kernelext.oci.resources import Resources, check_ulimits
from kernelext.oci.security import SecurityOptions

#: cgroup v2 has ``cgroup.controllers`` at its root; v1 and hybrid hosts do not.
CGROUP2_MARKER = Path("/sys/fs/cgroup/cgroup.controllers")
#: podman's wording for limits a rootless container on cgroup v1 cannot have (podman warns and drops them;
#: kernelext refuses them rather than run a container without the limit it was asked for).
ROOTLESS_V1_LIMITS = "Resource limits are not supported and ignored on cgroups V1 rootless systems"

_BUILDERS: tuple[Callable[..., Any], ...] = (Resources.build, SecurityOptions.build, Identity.build,
                                             MonitorOptions.build, CgroupOptions.build)
_NAMES = [set(inspect.signature(builder).parameters) for builder in _BUILDERS]


@dataclass(frozen=True)
class ContainerOptions:
    resources: Resources
    security: SecurityOptions
    identity: Identity
    monitor: MonitorOptions
    cgroups: CgroupOptions


def cgroup_v2() -> bool:
    return CGROUP2_MARKER.exists()


def build(options: dict[str, Any], *, rootless: bool) -> ContainerOptions:
    """Each option to its group; an unknown keyword is a ``TypeError`` as for any Python call."""
    unknown = set(options).difference(*_NAMES)
    if unknown:
        raise TypeError(f"create() got an unexpected keyword argument {min(unknown)!r}")
    resources, security, identity, monitor, cgroups = (builder(**{k: v for k, v in options.items() if k in names})
                                     for builder, names in zip(_BUILDERS, _NAMES))
    if rootless and resources.needs_cgroup and not (cgroup_v2() and cgroups.own_cgroup):
        raise InvalidArgumentError(ROOTLESS_V1_LIMITS)
    check_ulimits(resources.ulimits, rootless=rootless)
    return ContainerOptions(resources, security, identity, monitor, cgroups)
