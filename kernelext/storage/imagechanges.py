"""podman's ``--change`` instructions (``commit -c``, ``import -c``): Dockerfile lines that edit an image's config.

``CMD=["sh", "-c", "x"]`` and ``CMD sh -c x`` are both accepted (podman's
``=`` form and the Dockerfile's space form); a command not in JSON form is
run by ``/bin/sh -c``, as in a Dockerfile.
"""

from __future__ import annotations

import enum
import re
from dataclasses import replace

from kernelext.errors import InvalidArgumentError
from kernelext.storage.execform import exec_form
from kernelext.storage.images import ImageConfig

SHELL = ["/bin/sh", "-c"]
_SPLIT = re.compile(r"[ =]")


class Instruction(enum.Enum):
    CMD = "CMD"
    ENTRYPOINT = "ENTRYPOINT"
    ENV = "ENV"
    EXPOSE = "EXPOSE"
    LABEL = "LABEL"
    STOPSIGNAL = "STOPSIGNAL"
    USER = "USER"
    WORKDIR = "WORKDIR"


def shell_command(value: str) -> list[str]:
    """A Dockerfile command: its exec form, or ``/bin/sh -c VALUE``."""
    command = exec_form(value)
    return command if command is not None else [*SHELL, value]


def _pairs(value: str) -> list[tuple[str, str]]:
    """``K=V K2="V 2"`` (or the old ``K V`` form) as pairs."""
    if "=" not in value.split(" ", 1)[0]:
        key, _, rest = value.partition(" ")
        return [(key, rest.strip())]
    import shlex

    return [(word.partition("=")[0], word.partition("=")[2]) for word in shlex.split(value)]


def apply_changes(config: ImageConfig, changes: list[str]) -> ImageConfig:
    """A copy of ``config`` with each change applied in order; podman's refusal of an unknown instruction."""
    config = replace(config, env=list(config.env), labels=dict(config.labels),
                     exposed_ports=list(config.exposed_ports))
    for change in changes:
        text = change.strip()
        match = _SPLIT.search(text)
        keyword, value = (text[:match.start()], text[match.end():].strip()) if match else (text, "")
        try:
            instruction = Instruction(keyword.upper())
        except ValueError:
            raise InvalidArgumentError(f'invalid change "{change}" - invalid instruction {keyword.upper()}',
                                       operation="commit") from None
        if instruction is Instruction.CMD:
            config.cmd = shell_command(value)
        elif instruction is Instruction.ENTRYPOINT:
            config.entrypoint = shell_command(value)
            config.cmd = []  # as a Dockerfile: a new entrypoint resets the command
        elif instruction is Instruction.ENV:
            for key, val in _pairs(value):
                config.env = [e for e in config.env if e.partition("=")[0] != key] + [f"{key}={val}"]
        elif instruction is Instruction.LABEL:
            config.labels.update(_pairs(value))
        elif instruction is Instruction.EXPOSE:
            for port in value.split():
                port = port if "/" in port else f"{port}/tcp"
                if port not in config.exposed_ports:
                    config.exposed_ports.append(port)
        elif instruction is Instruction.STOPSIGNAL:
            config.stop_signal = value
        elif instruction is Instruction.USER:
            config.user = value
        elif instruction is Instruction.WORKDIR:
            config.workdir = value if value.startswith("/") else f"{config.workdir.rstrip('/')}/{value}"
    return config
