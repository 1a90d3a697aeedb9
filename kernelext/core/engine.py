"""What a podman command does around the container API (podman's ``pkg/domain``).

libpod's calls are strict (``stop`` of a stopped container is an error; a stop
leaves cleanup to the exit command). The user-facing commands are lenient and
complete: the CLI and the magics share these, so neither front end holds
lifecycle logic of its own.
"""

from __future__ import annotations

from kernelext.core.container import Container
from kernelext.core.state import ContainerStatus
from kernelext.errors import ContainerRemovedError, ContainerStateError, ContainerStoppedError, KernelextError
from kernelext.oci.attach import AttachSocket


def start(ctr: Container) -> None:
    """``podman start``: starting a running container is not an error."""
    if ctr.status is not ContainerStatus.RUNNING:
        ctr.start()


def stop(ctr: Container, timeout: int | None = None) -> None:
    """``podman stop``: idempotent, then cleanup — or removal for an ``--rm`` container."""
    try:
        ctr.stop(timeout)
    except ContainerStoppedError:
        pass
    if ctr.config.auto_remove:
        remove_quietly(ctr)
        return
    try:
        ctr.cleanup()
    except (ContainerStateError, ContainerRemovedError):
        pass  # restarted by its policy, or cleaned up by the exit command meanwhile


def remove_quietly(ctr: Container) -> None:
    """Remove after an ``--rm`` run; conmon's exit command (``cleanup --rm``) may have got there first."""
    try:
        ctr.remove(force=True)
    except ContainerRemovedError:
        pass


def attach_and_start(ctr: Container, *, start: bool, remove: bool) -> AttachSocket:
    """Attach (starting if asked); a failed start of an ``--rm`` container removes it."""
    try:
        return ctr.attach(start=start)
    except KernelextError:
        if remove:
            remove_quietly(ctr)
        raise
