"""kernelext: the container lifecycle (podman's libpod API on runc, conmon and
overlayfs), driven from Python, a podman-like CLI and Jupyter.

>>> from kernelext import Runtime
>>> rt = Runtime()
>>> c = rt.run("busybox", ["sh", "-c", "echo hi"])
>>> c.wait()
0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernelext.core.container import Container, ExecResult
from kernelext.core.events import Event
from kernelext.core.logs import LogLine
from kernelext.core.ports import PortMapping, Protocol
from kernelext.core.runtime import Runtime, default_runtime
from kernelext.core.state import ContainerStatus, RestartPolicy
from kernelext.errors import (
    CommandNotFoundError,
    ConmonDiedError,
    ContainerRemovedError,
    ContainerRunningError,
    ContainerStateError,
    ContainerStoppedError,
    CopyError,
    ImageInUseError,
    InvalidArgumentError,
    KernelextError,
    NameInUseError,
    NetworkError,
    NoSuchContainerError,
    NoSuchImageError,
    PermissionRequiredError,
    RuntimeFailure,
    WaitTimeoutError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from kernelext.host import HostCapabilities, host_capabilities


def __getattr__(name: str) -> object:
    # The host checks load on first use: the CLI's start-up path does not need them.
    if name in ("HostCapabilities", "host_capabilities"):
        from kernelext import host

        return getattr(host, name)
    raise AttributeError(f"module 'kernelext' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext kernelext``: the ``%container`` magics (imported only here, to keep the CLI lean)."""
    from kernelext.magics import load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    from kernelext.magics import unload

    unload(ipython)


__all__ = [
    "CommandNotFoundError",
    "ConmonDiedError",
    "Container",
    "ContainerRemovedError",
    "ContainerRunningError",
    "ContainerStateError",
    "ContainerStatus",
    "ContainerStoppedError",
    "CopyError",
    "Event",
    "ExecResult",
    "HostCapabilities",
    "ImageInUseError",
    "InvalidArgumentError",
    "KernelextError",
    "LogLine",
    "NameInUseError",
    "NetworkError",
    "NoSuchContainerError",
    "NoSuchImageError",
    "PermissionRequiredError",
    "PortMapping",
    "Protocol",
    "RestartPolicy",
    "Runtime",
    "RuntimeFailure",
    "WaitTimeoutError",
    "__version__",
    "default_runtime",
    "host_capabilities",
    "load_ipython_extension",
    "unload_ipython_extension",
]
