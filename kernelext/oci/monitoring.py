"""What conmon is asked to do for a container besides running it: podman's ``--log-driver``,
``--log-opt max-size=...`` (conmon's ``--log-size-max``) and ``--timeout`` (conmon's ``-T``)
(docs/architecture.md §13)."""

from __future__ import annotations

import enum
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

    @classmethod
    def build(cls, *, log_driver: str | None = None, log_opts: list[str] | None = None,
              timeout: int | None = None, conmon_pidfile: str | None = None) -> MonitorOptions:
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
        return cls(driver, max(size_max, 0), timeout or 0,
                   str(Path(conmon_pidfile).absolute()) if conmon_pidfile else "")

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
