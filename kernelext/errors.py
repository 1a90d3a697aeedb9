"""The exception tree of kernelext.

Every error the core raises is a :class:`KernelextError`, and each one also
subclasses the standard exception a caller would already catch::

    KernelextError(Exception)
    ├── NoSuchContainerError(KernelextError, LookupError)
    ├── NoSuchImageError(KernelextError, LookupError)
    ├── NameInUseError(KernelextError, ValueError)
    ├── InvalidArgumentError(KernelextError, ValueError)
    ├── ContainerStateError(KernelextError, RuntimeError)
    │   ├── ContainerRunningError      "already running"
    │   └── ContainerStoppedError      "already stopped"
    ├── ImageInUseError(KernelextError, RuntimeError)
    ├── NoSuchVolumeError(KernelextError, LookupError)
    ├── VolumeInUseError(KernelextError, RuntimeError)  exit code 2, as podman volume rm
    ├── ContainerRemovedError(KernelextError, LookupError)
    ├── RuntimeFailure(KernelextError, OSError)       runc / conmon / CRIU failed
    │   └── CommandNotFoundError                       exit code 127 / 126
    ├── ConmonDiedError(KernelextError, RuntimeError)
    ├── WaitTimeoutError(KernelextError, TimeoutError)
    ├── PermissionRequiredError(KernelextError, PermissionError)
    ├── NetworkError(KernelextError, OSError)         a published port cannot be bound or forwarded
    ├── CopyError(KernelextError, OSError)            cp, put/get archive, stat
    ├── ImageFormatError(KernelextError, ValueError)  a malformed or hostile image or layer
    ├── EngineUnsupportedError(KernelextError, NotImplementedError)  what a (remote) engine cannot do
    └── EngineUnreachableError(KernelextError, ConnectionError)      a remote service not reached

Errors carry the container (name or ID) and the operation, and render as a
single line in notebooks through ``_render_traceback_``.
"""

from __future__ import annotations

__all__ = [
    "CommandNotFoundError",
    "ConmonDiedError",
    "ContainerRemovedError",
    "ContainerRunningError",
    "ContainerStateError",
    "ContainerStoppedError",
    "CopyError",
    "EngineUnreachableError",
    "EngineUnsupportedError",
    "ImageFormatError",
    "ImageInUseError",
    "InvalidArgumentError",
    "KernelextError",
    "NameInUseError",
    "NetworkError",
    "NoSuchContainerError",
    "NoSuchImageError",
    "NoSuchVolumeError",
    "PermissionRequiredError",
    "RuntimeFailure",
    "VolumeInUseError",
    "WaitTimeoutError",
]


class KernelextError(Exception):
    """Base of every kernelext error.

    ``container`` is the container's name (or ID) the error concerns, if any;
    ``operation`` the API call that failed (``"start"``, ``"stop"``, ...).
    """

    exit_code: int = 125

    def __init__(self, message: str, *, container: str | None = None, operation: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.container = container
        self.operation = operation

    def __str__(self) -> str:
        return self.message

    def _render_traceback_(self) -> list[str]:
        """One line in IPython instead of a traceback."""
        return [f"{type(self).__name__}: {self.message}"]


class NoSuchContainerError(KernelextError, LookupError):
    """No container matches the given name or ID."""


class NoSuchImageError(KernelextError, LookupError):
    """No image matches the given name or ID."""


class NameInUseError(KernelextError, ValueError):
    """A container or image name is already taken."""


class InvalidArgumentError(KernelextError, ValueError):
    """An argument is malformed or a combination of arguments is refused."""


class ContainerStateError(KernelextError, RuntimeError):
    """The operation is not allowed in the container's current state."""


class ContainerRunningError(ContainerStateError):
    """The container is already running (callers may treat this as success)."""


class ContainerStoppedError(ContainerStateError):
    """The container is already stopped (callers may treat this as success)."""


class ImageInUseError(KernelextError, RuntimeError):
    """An image cannot be removed while containers use it (podman's exit code 2)."""

    exit_code = 2


class NoSuchVolumeError(KernelextError, LookupError):
    """No volume has the given name."""


class VolumeInUseError(KernelextError, RuntimeError):
    """A volume cannot be removed while containers use it (podman volume rm's exit code 2)."""

    exit_code = 2


class NoSuchCheckpointError(KernelextError, LookupError):
    """No entry of a container's checkpoint history has the given number or name."""


class ContainerRemovedError(KernelextError, LookupError):
    """The container was removed (possibly by another process)."""


class RuntimeFailure(KernelextError, OSError):
    """runc, conmon or CRIU reported an error."""


#: podman's exit codes for a command that was not found, and one that cannot be executed (or a missing workdir).
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


class CommandNotFoundError(RuntimeFailure):
    """The container's command could not be executed (127 not found, 126 not executable)."""

    def __init__(self, message: str, *, exit_code: int = EXIT_NOT_FOUND, container: str | None = None,
                 operation: str | None = None) -> None:
        super().__init__(message, container=container, operation=operation)
        self.exit_code = exit_code


class ConmonDiedError(KernelextError, RuntimeError):
    """conmon died without writing the container's exit file."""


class WaitTimeoutError(KernelextError, TimeoutError):
    """A wait ran out of time before any condition was met."""


class PermissionRequiredError(KernelextError, PermissionError):
    """The operation needs privileges this process lacks (e.g. root for CRIU)."""


class NetworkError(KernelextError, OSError):
    """A published port cannot be bound (taken, refused) or its forwarder failed to start."""


class CopyError(KernelextError, OSError):
    """Copying files into or out of a container failed (missing path, refused entry, ...)."""


#: Lines a tool adds after the reason it already gave (GNU tar once a child or an earlier step failed).
_TOOL_EPILOGUES = ("Exiting with failure status", "Child returned status", "Error is not recoverable")


def tool_reason(stderr: str | bytes, fallback: str) -> str:
    """An external tool's stderr made one line for an ``Error:`` line: its reasons joined with "; ",
    without the closing lines that repeat that it failed (``fallback`` when it said nothing)."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons = [line for line in lines if not any(epilogue in line for epilogue in _TOOL_EPILOGUES)]
    return "; ".join(dict.fromkeys(reasons or lines)) or fallback


class ImageFormatError(KernelextError, ValueError):
    """An image, its manifest or a layer is malformed, fails verification, or reaches outside its layer."""


class EngineUnsupportedError(KernelextError, NotImplementedError):
    """What the engine a command runs on cannot do (a remote engine: a command it does not carry yet, an
    endpoint its podman lacks); the message names the engine and the reason."""


class EngineUnreachableError(KernelextError, ConnectionError):
    """A remote engine's service could not be reached (no socket, SSH refused, not podman's API), or a
    connection's URL is refused (``tcp://`` off loopback)."""
