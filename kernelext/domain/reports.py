"""What a command did to each container it was asked about (podman's ``pkg/domain/entities`` reports).

A command carries on past one container's failure: each target gets a report,
and the front end decides only how to show it (a line of text, a value).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernelext.errors import KernelextError, NoSuchContainerError, NoSuchImageError

if TYPE_CHECKING:
    from kernelext.core.container import Container

#: podman's exit code of a command whose failure has no code of its own.
GENERIC_EXIT = 125


@dataclass
class Report:
    """One container's outcome: its ID, the name or ID the user typed (empty for ``--all``/``--filter``,
    where podman shows the ID), and the error that stopped it, if any."""

    id: str
    raw_input: str = ""
    error: Exception | None = None
    #: The container the command acted on (None once it is removed or when it failed to resolve).
    container: Container | None = field(default=None, repr=False, compare=False)

    @property
    def shown(self) -> str:
        """What podman prints for a success: the raw input, else the ID."""
        return self.raw_input or self.id


class StartReport(Report):
    pass


class StopReport(Report):
    pass


class KillReport(Report):
    pass


class PauseUnpauseReport(Report):
    pass


class RestartReport(Report):
    pass


class RmReport(Report):
    pass


class CleanupReport(Report):
    pass


class NetworkReloadReport(Report):
    pass


@dataclass
class WaitReport(Report):
    exit_code: int = 0


@dataclass
class InspectReport(Report):
    #: podman's inspect document of the container (or, for the top-level ``inspect``, the image).
    document: dict[str, Any] | None = None


@dataclass
class CheckpointReport(Report):
    #: The statistics ``--print-stats`` asked for (None without it).
    statistics: dict[str, Any] | None = None
    #: The history entry the checkpoint made (``kernelext.core.history.CheckpointEntry``; None: none made).
    entry: Any = None


@dataclass
class RestoreReport(Report):
    statistics: dict[str, Any] | None = None


def exit_code_of(error: BaseException) -> int:
    """The exit code a command that failed with ``error`` ends with."""
    return error.exit_code if isinstance(error, KernelextError) else GENERIC_EXIT


def errors_of(reports: Sequence[Report]) -> list[Exception]:
    return [r.error for r in reports if r.error is not None]


def exit_code(reports: Sequence[Report]) -> int:
    """0 when every container succeeded; otherwise the code of the last failure (podman's last error)."""
    errors = errors_of(reports)
    return exit_code_of(errors[-1]) if errors else 0


def raise_for(reports: Sequence[Report]) -> None:
    """For a caller acting on one container (a panel button): its failure as an exception."""
    errors = errors_of(reports)
    if errors:
        raise errors[-1]


def inspect_names(names: Sequence[str], container: Callable[[str], InspectReport],
                  image: Callable[[str], InspectReport] | None) -> list[InspectReport]:
    """podman's ``inspect`` of names: each one's container report, else (the top-level ``inspect``, with
    ``image``) its image's; a name neither has gets podman's "no such object". Every name gets a report."""
    done = []
    for name in names:
        try:
            done.append(container(name))
            continue
        except NoSuchContainerError as exc:
            failure: Exception = exc
        if image is not None:
            try:
                done.append(image(name))
                continue
            except NoSuchImageError:
                failure = NoSuchContainerError(f'no such object: "{name}"', container=name)
        done.append(InspectReport("", name, failure))
    return done
