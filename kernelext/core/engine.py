"""What a podman command does around the container API (podman's ``pkg/domain``).

libpod's calls are strict (``stop`` of a stopped container is an error; a stop
leaves cleanup to the exit command). The user-facing commands are lenient and
complete: the CLI and the magics share these, so neither front end holds
lifecycle logic of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kernelext.core.container import Container
from kernelext.core.ports import select as select_ports
from kernelext.core.state import ContainerStatus
from kernelext.errors import (
    ContainerRemovedError,
    ContainerStateError,
    ContainerStoppedError,
    InvalidArgumentError,
    KernelextError,
)
from kernelext.oci.attach import AttachSocket

if TYPE_CHECKING:
    from kernelext.core.runtime import Runtime


def start(ctr: Container) -> None:
    """``podman start``: starting a running container is not an error."""
    if ctr.status is not ContainerStatus.RUNNING:
        ctr.start()


def stop(ctr: Container, timeout: int | None = None) -> None:
    """``podman stop``: idempotent, then cleanup — or removal for an ``--rm`` container. A container that
    another command removed meanwhile (``rm -f`` beside this stop) is stopped too: not an error."""
    try:
        ctr.stop(timeout)
    except ContainerStoppedError:
        pass
    except ContainerRemovedError:
        return
    if ctr.config.auto_remove:
        remove_container(ctr, force=True)  # conmon's exit command (cleanup --rm) may have got there first
        return
    try:
        ctr.cleanup()
    except (ContainerStateError, ContainerRemovedError):
        pass  # restarted by its policy, or cleaned up by the exit command meanwhile


def kill(ctr: Container, signal: str | int = "SIGKILL") -> None:
    """``podman kill``: after a signal that ended the container, its cleanup is done at once, as conmon's
    exit command would a moment later, so ``inspect`` right after says ``exited`` as podman's does."""
    ctr.kill(signal)
    if ctr.status is not ContainerStatus.STOPPED:
        return  # a signal it survives (or handles and exits from later): conmon's exit command settles it
    if ctr.config.auto_remove:
        remove_container(ctr, force=True)  # as the exit command's cleanup --rm would
        return
    try:
        ctr.cleanup(only_stopped=True)
    except (ContainerStateError, ContainerRemovedError):
        pass  # the exit command got there first


def _targets(rt: Runtime, names: list[str], *, all_: bool, latest: bool,
             eligible: Callable[[Container], bool]) -> list[str]:
    """The containers named, or with ``all_`` the eligible ones, or with ``latest`` the newest (podman's rules)."""
    if (all_ or latest) and names:
        raise InvalidArgumentError("--all or --latest and containers cannot be used together")
    if all_ and latest:
        raise InvalidArgumentError("--all and --latest cannot be used together")
    if all_:
        return [c.id for c in rt.list() if eligible(c)]
    if latest:
        containers = rt.list()
        return [containers[-1].id] if containers else []
    if not names:
        raise InvalidArgumentError("you must provide at least one name or id")
    return list(names)


def checkpoint_targets(rt: Runtime, names: list[str], *, all_: bool = False, latest: bool = False) -> list[str]:
    """``podman container checkpoint`` targets: ``--all`` means every running container."""
    return _targets(rt, names, all_=all_, latest=latest, eligible=lambda c: c.status is ContainerStatus.RUNNING)


def restore_targets(rt: Runtime, names: list[str], *, all_: bool = False, latest: bool = False) -> list[str]:
    """``podman container restore`` targets: ``--all`` means every checkpointed, exited container."""
    return _targets(rt, names, all_=all_, latest=latest,
                    eligible=lambda c: c.state.checkpointed and c.status is ContainerStatus.EXITED)


def network_reload_targets(rt: Runtime, names: list[str], *, all_: bool = False,
                           latest: bool = False) -> list[str]:
    """``podman network reload`` targets: ``--all`` means every running container."""
    return _targets(rt, names, all_=all_, latest=latest, eligible=lambda c: c.status is ContainerStatus.RUNNING)


def reload_network(ctr: Container) -> str:
    """``podman network reload``: the container's ID once its forwarding and loopback are back."""
    ctr.reload_network()
    return ctr.id


def port_lines(ctr: Container, private: str | None = None) -> list[str]:
    """``podman port``: ``80/tcp -> 127.0.0.1:8080`` per mapping, or ``127.0.0.1:8080`` for one container port."""
    if private is None:
        return [str(mapping) for mapping in ctr.ports]
    return [f"{mapping.host_ip}:{mapping.host_port}" for mapping in select_ports(ctr.ports, private)]


def after_exit(ctr: Container, *, only_stopped: bool, remove: bool) -> None:
    """``podman container cleanup [--rm]``, which conmon's exit command runs: the restart policy
    restarts the container, or it is cleaned up — and removed when it was started with ``--rm``."""
    restarted = ctr.cleanup(only_stopped=only_stopped)
    if remove and not restarted:
        ctr.remove(force=False)


def remove_container(ctr: Container, *, force: bool = False, volumes: bool = False) -> None:
    """``podman rm``: a container found, then removed by another command before this one got its lock, is
    removed as asked (podman's ContainerRm ignores ErrCtrRemoved); one not found at all is still an error.
    After an ``--rm`` run, conmon's exit command (``cleanup --rm``) may have got there first the same way."""
    try:
        ctr.remove(force=force, volumes=volumes)
    except ContainerRemovedError:
        pass


def attach_and_start(ctr: Container, *, start: bool, remove: bool,
                     tty_size: tuple[int, int] | None = None) -> AttachSocket:
    """Attach (starting if asked); a failed start of an ``--rm`` container removes it."""
    try:
        return ctr.attach(start=start, tty_size=tty_size)
    except KernelextError:
        if remove:
            remove_container(ctr, force=True)  # conmon's exit command (cleanup --rm) may have got there first
        raise
