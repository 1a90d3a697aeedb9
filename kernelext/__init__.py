"""kernelext: the container lifecycle (podman's libpod API on runc, conmon and
overlayfs), driven from Python, a podman-like CLI and Jupyter.

>>> from kernelext import Runtime
>>> rt = Runtime()
>>> c = rt.run("busybox", ["sh", "-c", "echo hi"])
>>> c.wait()
0
"""

from __future__ import annotations

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
    NoSuchCheckpointError,
    NoSuchContainerError,
    NoSuchImageError,
    PermissionRequiredError,
    RuntimeFailure,
    WaitTimeoutError,
)

__version__ = "0.1.0"

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~20 ms here)
if TYPE_CHECKING:
    from kernelext.core.container import Container, ExecResult
    from kernelext.core.events import Event
    from kernelext.core.history import CheckpointEntry
    from kernelext.core.logs import LogLine
    from kernelext.core.ports import PortMapping, Protocol
    from kernelext.core.runtime import Runtime, default_runtime
    from kernelext.core.state import ContainerStatus, RestartPolicy
    from kernelext.host import HostCapabilities, host_capabilities

#: The public names defined elsewhere, loaded on first use: the ``kernelext``
#: command's start-up (kernelext.cli.forkserver's client) imports this package
#: and must not pay for the core.
_LAZY = {
    "Container": "kernelext.core.container",
    "ExecResult": "kernelext.core.container",
    "Event": "kernelext.core.events",
    "CheckpointEntry": "kernelext.core.history",
    "LogLine": "kernelext.core.logs",
    "PortMapping": "kernelext.core.ports",
    "Protocol": "kernelext.core.ports",
    "Runtime": "kernelext.core.runtime",
    "default_runtime": "kernelext.core.runtime",
    "ContainerStatus": "kernelext.core.state",
    "RestartPolicy": "kernelext.core.state",
    "HostCapabilities": "kernelext.host",
    "host_capabilities": "kernelext.host",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kernelext' has no attribute {name!r}")
    value = getattr(__import__(module, fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext kernelext``: the ``%container`` magics (imported only here, to keep the CLI lean)."""
    from kernelext.magics import load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    from kernelext.magics import unload

    unload(ipython)


__all__ = [
    "CheckpointEntry",
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
    "NoSuchCheckpointError",
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
