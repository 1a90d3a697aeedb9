"""Container states, configuration and the rules between them (docs/architecture.md §2).

Pure data and pure logic: no I/O here, so the state machine is testable on its
own and shared by the core, the CLI and the widgets (which enable buttons from
:data:`ALLOWED_FROM`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from kernelext.core.mounts import Mount
from kernelext.core.ports import PortMapping
from kernelext.errors import InvalidArgumentError
from kernelext.oci.attach import DEFAULT_DETACH_KEYS  # noqa: F401 - where the core's callers take it from
from kernelext.oci.cgroups import CgroupOptions
from kernelext.oci.identity import Identity
from kernelext.oci.monitoring import MonitorOptions
from kernelext.oci.resources import DEFAULT_PIDS_LIMIT, Resources
from kernelext.oci.security import SecurityOptions

DEFAULT_STOP_TIMEOUT = 10
DEFAULT_STOP_SIGNAL = "SIGTERM"


class ContainerStatus(enum.Enum):
    """libpod's states; the value is the name users see (podman's ``String()``)."""

    UNKNOWN = "unknown"
    CONFIGURED = "created"
    CREATED = "initialized"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    EXITED = "exited"
    REMOVING = "removing"
    STOPPING = "stopping"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> ContainerStatus:
        for status in cls:
            if status.value == text or status.name.lower() == text:
                return status
        raise InvalidArgumentError(f"unknown container state {text!r}")


S = ContainerStatus
_ANY = frozenset(S)

#: Which states each public call accepts (docs/architecture.md §2). Front ends use it to
#: enable exactly the actions the state machine allows.
ALLOWED_FROM: dict[str, frozenset[ContainerStatus]] = {
    "init": frozenset({S.CONFIGURED, S.STOPPED, S.EXITED}),
    "start": frozenset({S.CONFIGURED, S.CREATED, S.STOPPED, S.EXITED}),
    "attach": frozenset({S.CREATED, S.RUNNING}),
    "resize": frozenset({S.CREATED, S.RUNNING}),
    "stop": frozenset({S.CREATED, S.RUNNING, S.STOPPING}),
    "kill": frozenset({S.RUNNING, S.STOPPING, S.PAUSED}),
    "restart": frozenset({S.CONFIGURED, S.CREATED, S.RUNNING, S.STOPPED, S.EXITED}),
    "pause": frozenset({S.RUNNING}),
    "unpause": frozenset({S.PAUSED}),
    "mount": _ANY - {S.REMOVING},
    "export": _ANY - {S.REMOVING},
    "cleanup": frozenset({S.CONFIGURED, S.CREATED, S.STOPPED, S.STOPPING, S.EXITED}),
    "exec": frozenset({S.RUNNING}),
    "checkpoint": frozenset({S.RUNNING}),
    "restore": frozenset({S.CONFIGURED, S.EXITED}),
    "reload_network": frozenset({S.CREATED, S.RUNNING}),
    "remove": _ANY,
    "update": _ANY - {S.REMOVING},
    "rename": _ANY - {S.REMOVING},
}

#: The actions a front end offers (panel buttons), in display order.
ACTIONS = ("start", "stop", "kill", "pause", "unpause", "restart", "checkpoint", "restore", "remove")


#: What a rootless container can never do: CRIU needs root.
ROOT_ONLY_ACTIONS = frozenset({"checkpoint", "restore"})
#: What needs the container's cgroup freezer, which a normal user has only with a writable cgroup of the
#: container's own (kernelext.core.container.Container.pause_refusal).
FREEZER_ACTIONS = frozenset({"pause", "unpause"})


def allowed_actions(status: ContainerStatus, *, checkpointed: bool = False, rootless: bool = False,
                    freezable: bool | None = None) -> list[str]:
    """The actions the state machine allows now (and the host grants): what a panel enables.
    ``freezable`` (default: not ``rootless``) is whether this user may freeze the container."""
    allowed = {action for action in ACTIONS if action in ALLOWED_FROM and status in ALLOWED_FROM[action]}
    if rootless:
        allowed -= ROOT_ONLY_ACTIONS
    if not (not rootless if freezable is None else freezable):
        allowed -= FREEZER_ACTIONS
    if status is S.RUNNING:
        allowed.discard("start")  # allowed by podman's CLI as a no-op, but pointless as a button
    if not checkpointed:
        allowed.discard("restore")
    if status not in (S.CONFIGURED, S.STOPPED, S.EXITED):
        allowed.discard("remove")  # a running container needs force: stop it first
    return [action for action in ACTIONS if action in allowed]


class Intent(enum.Enum):
    """An operation in flight, recorded before it acts on runc, conmon or storage (libpod saves its
    state around each runtime call for the same reason): whoever finds it left by a process that died
    knows what may be half done (:mod:`kernelext.core.reconcile`)."""

    NONE = ""
    CREATE = "create"
    INIT = "init"
    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    CHECKPOINT = "checkpoint"
    RESTORE = "restore"
    REMOVE = "remove"


#: States in which conmon may still be alive and the exit file must be checked.
ACTIVE_STATES = frozenset({S.CREATED, S.RUNNING, S.STOPPED, S.STOPPING, S.PAUSED})


class RestartPolicyName(enum.Enum):
    NO = "no"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"
    UNLESS_STOPPED = "unless-stopped"


@dataclass(frozen=True)
class RestartPolicy:
    """``no``, ``on-failure[:N]``, ``always`` or ``unless-stopped``."""

    name: RestartPolicyName = RestartPolicyName.NO
    max_retries: int = 0

    @classmethod
    def parse(cls, text: str | None) -> RestartPolicy:
        if not text:
            return cls()
        name, _, retries = text.partition(":")
        try:
            policy = RestartPolicyName(name)
        except ValueError:
            raise InvalidArgumentError(f"invalid restart policy {text!r}: must be one of no, on-failure[:N], "
                                       "always, unless-stopped") from None
        if retries:
            if policy is not RestartPolicyName.ON_FAILURE:
                raise InvalidArgumentError(
                    "restart policy retries can only be specified with on-failure restart policy")
            if not retries.isdigit():
                raise InvalidArgumentError(
                    f"invalid restart policy retries {retries!r}: must be a non-negative integer")
        return cls(policy, int(retries or 0))

    def __str__(self) -> str:
        if self.name is RestartPolicyName.ON_FAILURE and self.max_retries:
            return f"on-failure:{self.max_retries}"
        return self.name.value


class NetworkMode(enum.Enum):
    """``none``: a private network namespace with loopback up; ``host``: the host's.

    Unlike podman's ``none``, ours accepts published ports: it is the only mode
    with a namespace of its own (there is no bridge here), and ports reach it
    through a loopback forwarder as rootless podman's do (kernelext.core.ports).
    """

    NONE = "none"
    HOST = "host"

    @classmethod
    def parse(cls, text: str) -> NetworkMode:
        try:
            return cls(text)
        except ValueError:
            raise InvalidArgumentError(f"unsupported network mode {text!r}: use 'none' or 'host'") from None


@dataclass
class ContainerConfig:
    """What a container was created with; immutable after create but for its limits (``update``)."""

    id: str
    name: str
    image_id: str
    image_name: str
    command: list[str]
    entrypoint: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    workdir: str = "/"
    user: str = ""
    tty: bool = False
    stdin: bool = False
    network: NetworkMode = NetworkMode.NONE
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    stop_signal: str = DEFAULT_STOP_SIGNAL
    stop_timeout: int = DEFAULT_STOP_TIMEOUT
    auto_remove: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    ports: list[PortMapping] = field(default_factory=list)
    #: Bind mounts, volumes and tmpfs (``-v``, ``--mount``, ``--tmpfs``, ``--volumes-from``, the image's Volumes).
    mounts: list[Mount] = field(default_factory=list)
    #: Limits, security settings, identity and conmon's settings (kernelext.oci.resources, .security,
    #: .identity, .monitoring).
    resources: Resources = field(default_factory=Resources)
    security: SecurityOptions = field(default_factory=SecurityOptions)
    identity: Identity = field(default_factory=Identity)
    monitor: MonitorOptions = field(default_factory=MonitorOptions)
    #: Its cgroup manager, parent, mode and namespace (kernelext.oci.cgroups).
    cgroups: CgroupOptions = field(default_factory=CgroupOptions)

    @property
    def pids_limit(self) -> int:
        return self.resources.pids_limit

    @property
    def args(self) -> list[str]:
        """The process's argv: entrypoint followed by command."""
        return [*self.entrypoint, *self.command]

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)  # flat fields: no need for asdict's deep copy
        data["command"], data["entrypoint"], data["env"] = list(self.command), list(self.entrypoint), list(self.env)
        data["labels"] = dict(self.labels)
        data["network"] = self.network.value
        data["restart_policy"] = str(self.restart_policy)
        data["ports"] = [mapping.to_json() for mapping in self.ports]
        data["mounts"] = [mount.to_json() for mount in self.mounts]
        for group in ("resources", "security", "identity", "monitor", "cgroups"):
            data[group] = getattr(self, group).to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerConfig:
        data = dict(data)
        data["network"] = NetworkMode(data["network"])
        data["restart_policy"] = RestartPolicy.parse(data["restart_policy"])
        data["ports"] = [PortMapping.from_json(item) for item in data.get("ports", [])]  # absent before ports
        data["mounts"] = [Mount.from_json(item) for item in data.get("mounts", [])]  # absent before mounts
        # Absent before limits (a config of then had only its pids limit).
        resources = data.get("resources") or {"pids_limit": data.pop("pids_limit", DEFAULT_PIDS_LIMIT)}
        data.pop("pids_limit", None)
        data["resources"] = Resources.from_json(resources)
        data["security"] = SecurityOptions.from_json(data.get("security") or {})
        data["identity"] = Identity.from_json(data.get("identity") or {})
        data["monitor"] = MonitorOptions.from_json(data.get("monitor") or {})
        data["cgroups"] = CgroupOptions.from_json(data.get("cgroups") or {})
        return cls(**data)


@dataclass
class ContainerRuntimeState:
    """What changes over a container's life (libpod's ``ContainerState``)."""

    status: ContainerStatus = ContainerStatus.CONFIGURED
    pid: int = 0
    conmon_pid: int = 0
    conmon_start_time: int = 0
    exit_code: int = 0
    exited: bool = False
    error: str = ""
    oom_killed: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0
    stopped_by_user: bool = False
    restart_policy_match: bool = False
    restart_count: int = 0
    runtime_mounted: bool = False
    user_mounts: int = 0
    checkpointed: bool = False
    checkpointed_at: float = 0.0
    restored: bool = False
    restored_at: float = 0.0
    #: The port forwarder serving the published ports while the container runs (0: none).
    forwarder_pid: int = 0
    forwarder_start_time: int = 0
    #: The operation in flight and the process doing it (PID and start time: a PID alone can be reused).
    intent: Intent = Intent.NONE
    intent_pid: int = 0
    intent_start_time: int = 0

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)  # all fields are scalars
        data["status"] = self.status.value
        data["intent"] = self.intent.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRuntimeState:
        data = dict(data)
        data["status"] = ContainerStatus(data["status"])
        data["intent"] = Intent(data.get("intent", ""))  # absent in rows saved before intents
        return cls(**data)

    @property
    def mounted(self) -> bool:
        return self.runtime_mounted or self.user_mounts > 0

    def begin(self, intent: Intent, owner: tuple[int, int]) -> None:
        """Record ``intent`` as done by ``owner`` (PID, start time); saved by the caller before it acts."""
        self.intent = intent
        self.intent_pid, self.intent_start_time = owner

    def done(self) -> None:
        """The operation in flight finished (either way): saved with its outcome."""
        self.intent = Intent.NONE
        self.intent_pid = self.intent_start_time = 0

    def new_run(self, pid: int, conmon_pid: int, conmon_start_time: int) -> None:
        """A new conmon took over (init or restore): forget the last run's exit and flags."""
        self.pid, self.conmon_pid, self.conmon_start_time = pid, conmon_pid, conmon_start_time
        self.exit_code = 0
        self.exited = False
        self.error = ""
        self.oom_killed = False
        self.stopped_by_user = False
        self.restart_policy_match = False
        self.checkpointed = False
        self.finished_at = 0.0


def should_restart(config: ContainerConfig, state: ContainerRuntimeState) -> bool:
    """libpod's ``shouldRestart``: only after an exit the runtime observed."""
    policy = config.restart_policy
    if state.stopped_by_user or not state.restart_policy_match:
        return False
    if policy.name is RestartPolicyName.NO:
        return False
    if policy.name is RestartPolicyName.ON_FAILURE:
        if state.exit_code == 0:
            return False
        if policy.max_retries and state.restart_count >= policy.max_retries:
            return False
    return True


def exit_code_for_signal(signum: int) -> int:
    """The status conmon reports for a process killed by ``signum``."""
    return 128 + signum
