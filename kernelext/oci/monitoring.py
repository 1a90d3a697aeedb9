"""What conmon is asked to do for a container besides running it: podman's ``--log-driver``,
``--log-opt max-size=...`` (conmon's ``--log-size-max``), ``--timeout`` (conmon's ``-T``) and
``--preserve-fds`` (runc's, through conmon's ``--runtime-opt``) (docs/architecture.md §13)."""

from __future__ import annotations

import enum
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kernelext.errors import InvalidArgumentError
from kernelext.oci.resources import parse_size
from kernelext.units import human_size


class LogDriver(enum.Enum):
    K8S_FILE = "k8s-file"
    NONE = "none"
    #: conmon hands the container's stdio its own: only for a run attached to a terminal or pipes.
    PASSTHROUGH = "passthrough"


#: podman's error for ``logs`` of a container that keeps none.
#: The first descriptor after stdin, stdout and stderr: ``--preserve-fds N`` passes FIRST_EXTRA_FD..+N-1.
FIRST_EXTRA_FD = 3

NO_LOGS = "this container is using the '{driver}' log driver, cannot read logs: this container is not logging output"


@dataclass(frozen=True)
class MonitorOptions:
    log_driver: LogDriver = LogDriver.K8S_FILE
    #: Bytes after which conmon starts the log afresh (0: never).
    log_size_max: int = 0
    #: Seconds after which conmon kills the container (0: never).
    timeout: int = 0
    #: ``--conmon-pidfile``: where conmon's PID is also written ("": only the store's own file).
    conmon_pidfile: str = ""
    #: ``--preserve-fds``: how many of the launching process's descriptors from 3 on the container gets.
    preserve_fds: int = 0

    @classmethod
    def build(cls, *, log_driver: str | None = None, log_opts: list[str] | None = None,
              timeout: int | None = None, conmon_pidfile: str | None = None,
              preserve_fds: int | None = None) -> MonitorOptions:
        try:
            driver = LogDriver(log_driver or LogDriver.K8S_FILE.value)
        except ValueError:
            raise InvalidArgumentError(f"invalid log driver: {log_driver}: supported drivers are k8s-file, "
                                       "none, passthrough") from None
        size_max = 0
        for opt in log_opts or []:
            key, sep, value = opt.partition("=")
            if key == "max-size" and sep:
                size_max = -1 if value == "-1" else parse_size(value, "--log-opt max-size", decimal=True)
            elif key in ("path", "tag", "max-file") and sep:
                raise InvalidArgumentError(f"--log-opt {key} is not supported by kernelext")
            else:
                raise InvalidArgumentError(f"invalid log option: {opt!r}")
        if timeout is not None and timeout < 0:
            raise InvalidArgumentError("--timeout must be a non-negative number of seconds")
        check_preserved_fds(preserve_fds or 0)
        return cls(driver, max(size_max, 0), timeout or 0,
                   str(Path(conmon_pidfile).absolute()) if conmon_pidfile else "", preserve_fds or 0)

    def conmon_args(self) -> list[str]:
        args = []
        if self.log_size_max:
            args += ["--log-size-max", str(self.log_size_max)]
        if self.timeout:
            args += ["--timeout", str(self.timeout)]
        return args

    def log_config(self, path: str) -> dict[str, Any]:
        """podman's ``inspect`` ``HostConfig.LogConfig``: no path for a driver that keeps no file; the size
        as go-units' ``HumanSize`` prints it."""
        return {"Type": self.log_driver.value, "Config": None,
                "Path": path if self.log_driver is LogDriver.K8S_FILE else "",
                "Size": human_size(self.log_size_max, precision=4)}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["log_driver"] = self.log_driver.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MonitorOptions:
        data = dict(data)
        data["log_driver"] = LogDriver(data.get("log_driver", LogDriver.K8S_FILE.value))
        return cls(**data)


def check_preserved_fds(count: int) -> range:
    """Descriptors 3..3+count-1 of this process, each open; podman's error for the first that is not."""
    if count < 0:
        raise InvalidArgumentError(f"invalid argument \"{count}\" for \"--preserve-fds\" flag: "
                                   f"strconv.ParseUint: parsing \"{count}\": invalid syntax")
    fds = range(FIRST_EXTRA_FD, FIRST_EXTRA_FD + count)
    for fd in fds:
        try:
            os.fstat(fd)
        except OSError:
            raise InvalidArgumentError(f"file descriptor {fd} is not available - the preserve-fds option requires "
                                       "that file descriptors must be passed") from None
    return fds
