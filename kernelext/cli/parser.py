"""The argument grammar shared by the CLI and the ``%container`` magic.

podman's subcommand names and flags. The parser never exits the process:
bad arguments raise :class:`UsageError`, ``--help`` raises :class:`HelpRequested`
carrying the text, so the magic can show it in a cell.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from kernelext.errors import InvalidArgumentError
from kernelext.storage.execform import exec_form

PROG = "kernelext"


class UsageError(InvalidArgumentError):
    """The command line is malformed."""


class HelpRequested(Exception):
    """``--help`` was given; ``text`` is the usage to show."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class _Parser(argparse.ArgumentParser):
    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        try:
            return super().parse_known_args(args, namespace)
        except argparse.ArgumentError as exc:
            self.error(str(exc))

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # podman (cobra) names the first flag it does not know
            flag = extras[0].partition("=")[0]
            self.error(f"unknown flag: {flag}" if flag.startswith("-") else f"unexpected argument: {extras[0]}")
        return parsed

    def _parse_optional(self, arg_string: str) -> tuple[Any, str, str | None] | None:
        parsed = super()._parse_optional(arg_string)
        # argparse takes "--flag=value with spaces" it does not know for a positional (the image name);
        # podman refuses it as an unknown flag.
        if parsed is None and arg_string.startswith("--") and " " in arg_string:
            return None, arg_string, None
        return parsed

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\nSee '{self.prog} --help'")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or f"{self.prog}: exit {status}")

    def print_help(self, file: Any = None) -> None:
        raise HelpRequested(self.format_help())

    def print_usage(self, file: Any = None) -> None:
        raise HelpRequested(self.format_usage())


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _bool_flag(value: str) -> bool:
    if value.lower() not in _BOOL_WORDS:
        raise argparse.ArgumentTypeError(f"invalid boolean {value!r}")
    return _BOOL_WORDS[value.lower()]


def copy_arguments(args: argparse.Namespace) -> tuple[str, str, bool]:
    """``cp``'s source, destination and ``--archive``, with "-a SRC DST" put back together."""
    paths = list(args.paths)
    archive = _BOOL_WORDS.get(str(args.archive).lower())
    if archive is None:  # "-a SRC DST": the flag's optional value took SRC
        paths.insert(0, args.archive)
        archive = True
    if len(paths) != 2:
        raise UsageError(f"accepts 2 arg(s), received {len(paths)}")
    return paths[0], paths[1], archive


def _create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="assign a name to the container")
    p.add_argument("-e", "--env", action="append", default=[], help="set environment variables (KEY=VALUE)")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open")
    p.add_argument("--restart", default="no", help="restart policy: no, on-failure[:N], always, unless-stopped")
    p.add_argument("--stop-signal", help="signal to stop the container (default SIGTERM)")
    p.add_argument("--stop-timeout", type=int, help="seconds to wait before killing the container (default 10)")
    p.add_argument("--network", "--net", default="none", help="network mode: none (own namespace) or host")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:][HOSTPORT:]CTRPORT[/PROTO]",
                   help="publish a container port on the host's 127.0.0.1 (no HOSTPORT: a free one)")
    p.add_argument("--entrypoint", help="overwrite the image's entrypoint")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--pull", default="missing", choices=("always", "missing", "never", "newer"),
                   help="pull the image first: always, when missing (default), never, or newer")
    p.add_argument("--tls-verify", type=_bool_flag, nargs="?", const=True, default=True,
                   help="require HTTPS and verify certificates when pulling")
    p.add_argument("--authfile", help="path of the authentication file for pulling")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines while pulling the image")
    p.add_argument("-l", "--label", action="append", default=[], help="set metadata (KEY=VALUE)")
    _mount_options(p)
    _resource_flags(p)
    _security_flags(p)
    _identity_flags(p)
    p.add_argument("image", help="image name or ID")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")

def _mount_options(p: argparse.ArgumentParser) -> None:
    """Bind mounts, volumes and tmpfs (kernelext.core.mounts)."""
    p.add_argument("-v", "--volume", action="append", default=[], metavar="[SRC:]DEST[:OPTIONS]",
                   help="bind mount a host path (/ or ./), mount a named volume, or an anonymous one")
    p.add_argument("--mount", action="append", default=[], metavar="type=TYPE,...",
                   help="attach a bind, volume or tmpfs mount (type=bind|volume|tmpfs,src=,dst=,ro,...)")
    p.add_argument("--tmpfs", action="append", default=[], metavar="DEST[:OPTIONS]", help="mount a tmpfs")
    p.add_argument("--volumes-from", action="append", default=[], metavar="CTR[:ro|rw]",
                   help="mount the volumes and bind mounts of another container")

def _resource_flags(p: argparse.ArgumentParser) -> None:
    """podman's resource limit flags (``create``, ``run`` and ``update``)."""
    p.add_argument("-m", "--memory", help="memory limit (format: <number>[<unit>], unit b, k, m or g)")
    p.add_argument("--memory-swap", help="memory plus swap limit (-1: unlimited swap; default twice --memory)")
    p.add_argument("--memory-reservation", help="memory soft limit")
    p.add_argument("--cpus", type=float, help="number of CPUs (e.g. 0.5)")
    p.add_argument("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    p.add_argument("--cpu-quota", type=int, help="limit the CPU CFS quota (microseconds per period)")
    p.add_argument("--cpu-period", type=int, help="limit the CPU CFS period (microseconds)")
    p.add_argument("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--pids-limit", type=int, help="the container's pids limit (-1: unlimited; default 2048)")
    p.add_argument("--device-read-bps", action="append", help="limit the read rate from a device (PATH:RATE)")


def _security_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ulimit", action="append", default=[], help="ulimit options (TYPE=SOFT[:HARD])")
    p.add_argument("--oom-kill-disable", action="store_true", help="disable the OOM killer for the container")
    p.add_argument("--oom-score-adj", type=int, help="tune the host's OOM preferences (-1000 to 1000)")
    p.add_argument("--cap-add", action="append", default=[], help="add capabilities (ALL: all of them)")
    p.add_argument("--cap-drop", action="append", default=[], help="drop capabilities (ALL: all of them)")
    p.add_argument("--privileged", action="store_true", help="give extended privileges to the container")
    p.add_argument("--security-opt", action="append", default=[],
                   help="no-new-privileges, seccomp=unconfined|FILE, mask=PATHS, unmask=PATHS|ALL")
    p.add_argument("--read-only", action="store_true", help="make the root filesystem read-only")
    p.add_argument("--read-only-tmpfs", type=_bool_flag, nargs="?", const=True, default=True,
                   help="with --read-only, tmpfs on /run, /tmp and /var/tmp (default true)")
    p.add_argument("--group-add", action="append", default=[], help="additional groups to join")
    p.add_argument("--device", action="append", default=[], help="add a host device (HOST[:CONTAINER][:rwm])")
    p.add_argument("--device-cgroup-rule", action="append", default=[],
                   help='allow devices in the cgroup ("TYPE MAJOR:MINOR ACCESS", e.g. "c 7:* rmw")')


def _identity_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hostname", help="the container's host name")
    p.add_argument("--add-host", action="append", default=[], help="add a custom host-to-IP mapping (HOST:IP)")
    p.add_argument("--env-file", action="append", default=[], help="read environment variables from a file")
    p.add_argument("--env-host", action="store_true", help="use all of the current environment")
    p.add_argument("--unsetenv", action="append", default=[],
                   help="leave out a default or image environment variable")
    p.add_argument("--unsetenv-all", action="store_true",
                   help="leave out all default and image environment variables")
    p.add_argument("--annotation", action="append", default=[], help="add an annotation (KEY=VALUE)")
    p.add_argument("--init", action="store_true", help="run an init (catatonit) that forwards signals and reaps")
    p.add_argument("--tz", help="set the time zone (a zone name, or local)")
    p.add_argument("--umask", help="the umask of the container's process (default 0022)")
    for kind in ("pid", "ipc", "uts"):
        p.add_argument(f"--{kind}", help=f"the {kind.upper()} namespace: private (default) or host")
    p.add_argument("--log-driver", help="logging driver: k8s-file (default), none, passthrough")
    p.add_argument("--log-opt", action="append", default=[], help="logging driver options (max-size=SIZE)")
    p.add_argument("--timeout", type=int, help="kill the container after this many seconds (default: never)")
    p.add_argument("--conmon-pidfile", help="also write conmon's PID to this file")
    p.add_argument("--cidfile", help="write the container ID to this file")
    p.add_argument("--replace", action="store_true", help="replace a container of the same name")
    p.add_argument("--kernel-memory", help="no longer supported: accepted and ignored (podman's warning)")
    p.add_argument("--cgroups", help="enabled (default), no-conmon, split (disabled needs crun)")
    p.add_argument("--cgroup-parent", help="the cgroup (cgroupfs) or slice (systemd) the container's goes in")
    p.add_argument("--cgroupns", help="the cgroup namespace: host or private (default: private on cgroup v2)")


def _split_all(values: list[str]) -> list[str]:
    """Repeated flags whose values may also be comma-separated (``--cap-add a,b``)."""
    return [part for value in values for part in value.split(",") if part]


def resource_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Runtime.create``'s resource keywords (and ``Container.update``'s) from a parsed command line."""
    return dict(memory=args.memory, memory_swap=args.memory_swap, memory_reservation=args.memory_reservation,
                cpus=args.cpus, cpu_shares=args.cpu_shares, cpu_quota=args.cpu_quota, cpu_period=args.cpu_period,
                cpuset_cpus=args.cpuset_cpus, pids_limit=args.pids_limit,
                device_read_bps=args.device_read_bps)


def _entrypoint(text: str | None) -> list[str] | None:
    """podman's ``--entrypoint``: a JSON array (``'["sh","-c"]'``) or one command."""
    if text is None:
        return None
    command = exec_form(text)
    if command is not None:
        return command
    return [text] if text else []


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The limits, security and identity keywords of ``Runtime.create``."""
    return dict(**resource_options(args), ulimits=args.ulimit, oom_kill_disable=args.oom_kill_disable,
                oom_score_adj=args.oom_score_adj, cap_add=_split_all(args.cap_add),
                cap_drop=_split_all(args.cap_drop), privileged=args.privileged, security_opt=args.security_opt,
                read_only=args.read_only, read_only_tmpfs=args.read_only_tmpfs, group_add=args.group_add,
                devices=args.device, device_cgroup_rules=args.device_cgroup_rule, hostname=args.hostname,
                add_hosts=args.add_host,
                annotations=dict(item.partition("=")[::2] for item in args.annotation), init=args.init,
                tz=args.tz, umask=args.umask, env_file=args.env_file, env_host=args.env_host, pid=args.pid,
                unsetenv=args.unsetenv, unsetenv_all=args.unsetenv_all,
                ipc=args.ipc, uts=args.uts, log_driver=args.log_driver, log_opts=args.log_opt, timeout=args.timeout,
                conmon_pidfile=args.conmon_pidfile, cidfile=args.cidfile, replace=args.replace,
                kernel_memory=args.kernel_memory, preserve_fds=getattr(args, "preserve_fds", 0),
                cgroups=args.cgroups, cgroup_parent=args.cgroup_parent, cgroupns=args.cgroupns,
                cgroup_manager=getattr(args, "cgroup_manager", None))



def create_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``Runtime.create`` from a parsed create/run command line."""
    labels = dict(item.partition("=")[::2] for item in args.label)
    return dict(command=args.command or None, name=args.name, env=args.env, workdir=args.workdir, user=args.user,
                tty=args.tty, stdin=args.interactive, network=args.network, restart_policy=args.restart,
                stop_signal=args.stop_signal, stop_timeout=args.stop_timeout, auto_remove=args.rm, labels=labels,
                publish=args.publish, pull=args.pull, tls_verify=args.tls_verify, authfile=args.authfile,
                volumes=args.volume, mounts=args.mount, tmpfs=args.tmpfs, volumes_from=args.volumes_from,
                entrypoint=_entrypoint(args.entrypoint), **_run_options(args))


def volume_create_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``Runtime.volumes.create`` from a parsed ``volume create`` command line."""
    return dict(labels=dict(item.partition("=")[::2] for item in args.label),
                options=dict(item.partition("=")[::2] for item in args.opt), ignore=args.ignore)


def checkpoint_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``Container.checkpoint`` from a parsed checkpoint command line."""
    return dict(keep=args.keep, leave_running=args.leave_running, tcp_established=args.tcp_established,
                file_locks=args.file_locks, export=args.export, ignore_rootfs=args.ignore_rootfs,
                ignore_volumes=args.ignore_volumes, pre_checkpoint=args.pre_checkpoint,
                with_previous=args.with_previous, compress=args.compress, print_stats=args.print_stats,
                create_image=args.create_image, name=args.name)


def restore_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``Container.restore`` from a parsed restore command line (podman's checks)."""
    if args.import_ and (args.all or args.latest):
        raise UsageError("cannot use --import with --all or --latest")
    if args.import_ and args.containers:
        raise UsageError("cannot use --import with positional arguments")
    if args.from_ is not None and (args.import_ or args.all or args.latest or len(args.containers) != 1):
        raise UsageError("--from needs exactly one container and cannot be used with --import, --all or --latest")
    for option, given in (("--name", args.name), ("--publish", args.publish)):
        if not given or args.import_:
            continue
        if args.from_ is not None:
            allowed = bool(args.name)  # a branch: a new container from the entry
        else:  # one positional may be a checkpoint image: the command layer decides (and refuses a container)
            allowed = not (args.all or args.latest) and len(args.containers) == 1
        if not allowed:
            raise UsageError(f"{option} can only be used with image or --import")
    return dict(keep=args.keep, tcp_established=args.tcp_established, tcp_close=args.tcp_close,
                file_locks=args.file_locks, ignore_rootfs=args.ignore_rootfs, ignore_volumes=args.ignore_volumes,
                import_previous=args.import_previous, print_stats=args.print_stats)


def _containers(p: argparse.ArgumentParser, nargs: str = "+") -> None:
    p.add_argument("containers", nargs=nargs, metavar="CONTAINER")


def _stream_name(text: str) -> str:
    if text.lower() not in ("stdin", "stdout", "stderr"):
        raise argparse.ArgumentTypeError(f"invalid stream {text!r} for --attach - must be one of stdin, stdout, "
                                         "or stderr")
    return text.lower()


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="run in the background and print the ID")
    p.add_argument("-a", "--attach", action="append", default=[], type=_stream_name,
                   help="attach to STDIN, STDOUT or STDERR (default: STDOUT and STDERR)")
    p.add_argument("--detach-keys", default=None, help="key sequence for detaching (default ctrl-p,ctrl-q)")
    _preserve_fds_flag(p)
    _create_flags(p)


def _preserve_fds_flag(p: argparse.ArgumentParser) -> None:
    """podman's ``--preserve-fds`` (``run`` and ``exec`` only, as in podman)."""
    p.add_argument("--preserve-fds", type=int, default=0, metavar="N",
                   help="pass N additional file descriptors (3 and up) into the container")


def _all_flag(p: argparse.ArgumentParser, what: str, short: bool = True) -> None:
    p.add_argument(*(("-a", "--all") if short else ("--all",)), action="store_true", help=what)


def _latest_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("-l", "--latest", action="store_true", help="act on the latest container kernelext knows of")


def _filter_flag(p: argparse.ArgumentParser, short: bool = True) -> None:
    p.add_argument(*(("-f", "--filter") if short else ("--filter",)), action="append", default=[],
                   dest="filter", metavar="KEY=VALUE",
                   help="only the containers that match (id, name, label, status, exited, ancestor, before, since, "
                        "restart-policy)")


def _time_flag(p: argparse.ArgumentParser) -> None:
    # --timeout: podman's older spelling of stop's --time
    p.add_argument("-t", "--time", "--timeout", type=int, default=None, dest="time",
                   help="seconds to wait before killing (default: the container's --stop-timeout)")


def _start_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="attach STDOUT/STDERR")
    p.add_argument("-i", "--interactive", action="store_true", help="attach STDIN")
    p.add_argument("--detach-keys", default=None, help="key sequence for detaching")
    _all_flag(p, "start all containers", short=False)
    _filter_flag(p, short=False)
    _latest_flag(p)
    _containers(p, "*")


def _stop_flags(p: argparse.ArgumentParser) -> None:
    _time_flag(p)
    _all_flag(p, "stop all running containers")
    p.add_argument("-i", "--ignore", action="store_true", help="ignore containers that do not exist")
    _filter_flag(p, short=False)
    _latest_flag(p)
    _containers(p, "*")


def _kill_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", default="SIGKILL", help="signal to send (default SIGKILL)")
    _all_flag(p, "signal all running containers")
    _latest_flag(p)
    _containers(p, "*")


def _pause_flags(p: argparse.ArgumentParser) -> None:
    _all_flag(p, "all containers")
    _filter_flag(p)
    _latest_flag(p)
    _containers(p, "*")


def _restart_flags(p: argparse.ArgumentParser) -> None:
    _time_flag(p)
    _all_flag(p, "restart all containers")
    p.add_argument("--running", action="store_true", help="restart only the running containers")
    _filter_flag(p)
    _latest_flag(p)
    _containers(p, "*")


def _wait_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--condition", action="append", default=[], help="state to wait for (default stopped)")
    p.add_argument("-i", "--interval", default="250ms", help="polling interval (e.g. 250ms, 1s)")
    _latest_flag(p)
    _containers(p, "*")


def _exists_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")


def _logs_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="follow the log output")
    p.add_argument("--tail", type=int, default=-1, help="number of lines from the end (-1: all)")
    p.add_argument("--since", help="show logs since a timestamp or a duration (10m)")
    p.add_argument("--until", help="show logs until a timestamp or a duration")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("-n", "--names", action="store_true", help="prefix each line with its container's name")
    _latest_flag(p)
    _containers(p, "*")


def _attach_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detach-keys", default=None, help="key sequence for detaching")
    p.add_argument("--no-stdin", action="store_true", help="do not attach STDIN")
    p.add_argument("container", metavar="CONTAINER")


def _exec_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="run the command in the background, print its ID")
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("--detach-keys", default=None, help="key sequence for detaching (a cell's terminal)")
    p.add_argument("-e", "--env", action="append", default=[], help="set environment variables")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="username or UID")
    _preserve_fds_flag(p)
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _ps_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default: running)")
    p.add_argument("-q", "--quiet", action="store_true", help="print IDs only")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate IDs")
    p.add_argument("--format", help="'json' or a Go template such as {{.Names}}")
    _filter_flag(p)
    p.add_argument("--sort", default="created", help="sort by: command, created, id, image, names, runningfor, "
                                                     "size, status")
    p.add_argument("--noheading", action="store_true", help="do not print headers")
    p.add_argument("-n", "--last", type=int, default=-1, help="the n last created containers (all states)")
    _latest_flag(p)


def _inspect_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", help="'json' or a Go template such as {{.State.Status}}")
    _latest_flag(p)
    _containers(p, "*")


def _rm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="kill running containers first")
    p.add_argument("-a", "--all", action="store_true", help="remove all containers")
    p.add_argument("-i", "--ignore", action="store_true", help="ignore containers that do not exist")
    p.add_argument("-v", "--volumes", action="store_true", help="remove the containers' anonymous volumes too")
    _time_flag(p)
    _filter_flag(p, short=False)
    _latest_flag(p)
    _containers(p, "*")


def _mount_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--notruncate", action="store_true", help="full container IDs in the list of mounts")
    _containers(p, "*")


def _umount_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="drop every mount reference")
    _containers(p)


def _export_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", help="write to a file instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")


def _cp_flags(p: argparse.ArgumentParser) -> None:
    # podman's -a is a boolean taking only "-a=false"; argparse's optional value may swallow
    # SRC in "-a SRC DST", which the cp handler puts back.
    p.add_argument("-a", "--archive", nargs="?", const="true", default="true", metavar="BOOL",
                   help="chown files copied into a container to its user (default true; -a=false keeps the tar's)")
    p.add_argument("--overwrite", action="store_true", help="allow a directory to replace a file and the reverse")
    p.add_argument("paths", nargs="*", metavar="[CONTAINER:]PATH", help="source and destination ('-': a tar stream)")


def _rename_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("name", metavar="NAME")


def _container_prune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[], help="only containers that match (label=KEY[=VALUE])")


def _diff_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", help="'json'")
    _latest_flag(p)
    p.add_argument("container", nargs="?", metavar="CONTAINER")


def _stat_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", help="'json' (default) or a Go template such as {{.size}}")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("path", metavar="PATH", help="path inside the container (relative: to its working directory)")


def _checkpoint_restore_common(p: argparse.ArgumentParser, what: str) -> None:
    which = "running" if what == "checkpoint" else "checkpointed"
    p.add_argument("-a", "--all", action="store_true", help=f"{what} all {which} containers")
    p.add_argument("-l", "--latest", action="store_true", help="act on the latest container kernelext knows of")
    p.add_argument("-k", "--keep", action="store_true", help="keep all temporary checkpoint files")
    p.add_argument("--tcp-established", action="store_true",
                   help=f"{what} a container with established TCP connections")
    p.add_argument("--file-locks", action="store_true", help=f"{what} a container with file locks")
    p.add_argument("--ignore-rootfs", action="store_true",
                   help="do not include root file-system changes when exporting" if what == "checkpoint" else
                   "do not apply root file-system changes when importing")
    p.add_argument("--ignore-volumes", action="store_true", help="do not export or import volume contents")
    p.add_argument("--print-stats", action="store_true", help="display checkpoint/restore statistics as JSON")
    _containers(p, "*")


def _checkpoint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-R", "--leave-running", action="store_true",
                   help="leave the container running after checkpointing")
    p.add_argument("-e", "--export", help="export the checkpoint image to a tar archive")
    p.add_argument("-P", "--pre-checkpoint", action="store_true", help="dump the container's memory information only, "
                   "leaving the container running")
    p.add_argument("--with-previous", action="store_true", help="checkpoint the container with a pre-checkpoint image")
    p.add_argument("-c", "--compress", help="compression of the exported archive: zstd (default), gzip, none")
    p.add_argument("--create-image", metavar="IMAGE", help="create a checkpoint image from the checkpoint "
                   "('restore IMAGE' restores it)")
    p.add_argument("--name", help="name of the checkpoint's history entry")
    p.epilog = ("What is kept: checkpoint ls CONTAINER, checkpoint rm CONTAINER ENTRY..., checkpoint prune "
                "[CONTAINER...]; what a checkpoint holds: checkpoint inspect ARCHIVE|DIR|CONTAINER ENTRY, checkpoint diff A B "
                "(or CONTAINER ENTRY_A [CONTAINER2] ENTRY_B). "
                "A container named like one of these words is checkpointed as: checkpoint -- NAME")
    _checkpoint_restore_common(p, "checkpoint")


def _clone_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", dest="name_flag", help="name of the clone (default: NAME-clone)")
    p.add_argument("--destroy", action="store_true", help="remove the original container")
    p.add_argument("-f", "--force", action="store_true", help="remove the original even if it runs (with --destroy)")
    p.add_argument("--run", action="store_true", help="start the clone")
    _resource_flags(p)  # the clone's limits in place of the original's
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("image", nargs="?", metavar="IMAGE")


def clone_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of the command layer's ``clone`` from a parsed ``container clone`` line."""
    from kernelext.core.clone import RESOURCE_FIELDS

    resources = {key: getattr(args, key) for key in RESOURCE_FIELDS if getattr(args, key) is not None}
    return {"name": args.name_flag or args.name, "image": args.image, "destroy": args.destroy,
            "force": args.force, "run": args.run, **resources}


#: How ``checkpoint inspect``/``diff`` tell a path from a container (kernelext/domain/checkpointinfo.py).
_CHECKPOINT_WORDS = ("An existing file or directory is a checkpoint archive or directory; any other word is a "
                     "container followed by an entry of its history (number or name).")


def _checkpoint_inspect_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", help="'json' or a Go template such as {{.Name}} (default: a tree)")
    p.add_argument("checkpoint", metavar="ARCHIVE|DIR|CONTAINER",
                   help="an exported checkpoint archive, a checkpoint directory, or a container")
    p.add_argument("entry", nargs="?", metavar="ENTRY", help="an entry of the container's history")
    p.epilog = _CHECKPOINT_WORDS


def _checkpoint_diff_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", help="'json' or a Go template such as {{.Files.Added}}")
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                   help="the earlier and the later checkpoint: A B, CONTAINER ENTRY_A [CONTAINER2] ENTRY_B")
    p.epilog = _CHECKPOINT_WORDS


def _restore_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tcp-close", action="store_true", help="restore a container but close its TCP connections")
    p.add_argument("-i", "--import", dest="import_", help="restore from an exported checkpoint archive (tar.gz)")
    p.add_argument("-n", "--name", help="name of the restored container (--import or --from): a new container ID")
    p.add_argument("--from", dest="from_", metavar="ENTRY",
                   help="restore from this entry of the checkpoint history (number or name); in place, the "
                   "files rolled back too, or as a new container with --name")
    p.add_argument("--import-previous", help="restore from an exported pre-checkpoint archive (tar.gz)")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:][HOSTPORT:]CTRPORT[/PROTO]",
                   help="publish these ports instead of the archive's (--import, or --from with --name)")
    _checkpoint_restore_common(p, "restore")


def _port_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]", help="show only this container port")


def _network_reload_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="reload the network of all running containers")
    p.add_argument("-l", "--latest", action="store_true", help="act on the latest container kernelext knows of")
    _containers(p, "*")


def _events_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help="show events since a timestamp or a duration")
    p.add_argument("--until", help="show events until a timestamp or a duration")
    p.add_argument("--stream", type=_bool_flag, default=True, metavar="BOOL",
                   help="keep streaming new events (default true)")
    p.add_argument("--format", help="'json' or a Go template")
    p.add_argument("-f", "--filter", action="append", default=[], dest="filter", metavar="KEY=VALUE",
                   help="only the matching events (container, event, image, label, type)")
    p.add_argument("--no-trunc", type=_bool_flag, nargs="?", const=True, default=True, metavar="BOOL",
                   help="show whole IDs (default true)")


def _stats_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-stream", action="store_true", help="print one sample and exit")
    p.add_argument("-a", "--all", action="store_true", help="all containers (default: running)")
    p.add_argument("--format", help="'json' or a Go template")
    _containers(p, "*")


def _top_flags(p: argparse.ArgumentParser) -> None:
    _latest_flag(p)
    p.add_argument("container", nargs="?", metavar="CONTAINER")


def _update_flags(p: argparse.ArgumentParser) -> None:
    _resource_flags(p)
    p.add_argument("container", metavar="CONTAINER")


def _cleanup_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stopped-only", action="store_true", help="only clean up stopped containers")
    p.add_argument("--rm", action="store_true", help="remove the container after cleanup")
    _containers(p)


def _image_import_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--change", action="append", default=[], help="CMD instruction for the image")
    p.add_argument("-q", "--quiet", action="store_true", help="print the image ID only (import prints nothing else)")
    p.add_argument("tarball", help="the rootfs tarball; - reads it from stdin")
    p.add_argument("name", nargs="?", help="the image's name (none: a dangling image)")


def _pull_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls-verify", type=_bool_flag, nargs="?", const=True, default=True, help="require HTTPS and verify certificates")
    p.add_argument("--authfile", help="path of the authentication file")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    p.add_argument("-a", "--all-tags", action="store_true", help="pull every tagged image of the repository")
    p.add_argument("image", metavar="IMAGE", help="[docker://]registry/name[:tag]")


def _push_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls-verify", type=_bool_flag, nargs="?", const=True, default=True,
                   help="require HTTPS and verify certificates")
    p.add_argument("--authfile", help="path of the authentication file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("destination", nargs="?", metavar="DESTINATION",
                   help="[docker://]registry/name[:tag], dir:PATH, oci:PATH, docker-archive:PATH, oci-archive:PATH")


def _load_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", default="-", help="read from this archive file (default: stdin)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image name")


def _save_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="write to this file")
    p.add_argument("--format", default="docker-archive", choices=("oci-archive", "docker-archive"))
    p.add_argument("-q", "--quiet", action="store_true", help="suppress the output (save prints none)")
    p.add_argument("image", metavar="IMAGE")


def _image_ls_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show all images (there are no intermediate ones)")
    p.add_argument("-q", "--quiet", action="store_true", help="print IDs only")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="dangling=true|false, reference=PATTERN, label=KEY[=VALUE]")
    p.add_argument("-n", "--noheading", action="store_true", help="do not print column headings")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("--format", help="'json' or a Go template")
    p.add_argument("image", nargs="?", metavar="IMAGE", help="show only images with this name")


def _image_history_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-H", "--human", type=_bool_flag, nargs="?", const=True, default=True,
                   help="sizes and dates in human readable form")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="print IDs only")
    p.add_argument("--format", help="'json' or a Go template")
    p.add_argument("image", metavar="IMAGE")


def _image_tag_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("targets", nargs="+", metavar="TARGET_NAME")


def _image_untag_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("names", nargs="*", metavar="NAME")


def _image_prune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="remove every image no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[],
                   help="only images that match (until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE])")


def _image_exists_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE")


def _image_tree_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--whatrequires", action="store_true", help="show the images built on this one")
    p.add_argument("image", metavar="IMAGE")


def _commit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--author", default="", help="the image's author")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="a Dockerfile instruction for the image's config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                        "STOPSIGNAL, USER, WORKDIR)")
    p.add_argument("-m", "--message", default="", help="the commit message (the history entry's comment)")
    p.add_argument("-p", "--pause", type=_bool_flag, nargs="?", const=True, default=True,
                   help="pause the container while committing (default true)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but the image ID")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("image", nargs="?", metavar="IMAGE")


def _image_inspect_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", help="'json' or a Go template such as {{.Config.Cmd}}")
    p.add_argument("images", nargs="+", metavar="IMAGE")


def _image_rm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="remove all images")
    p.add_argument("-f", "--force", action="store_true", help="remove the containers that use them too")
    p.add_argument("-i", "--ignore", action="store_true", help="ignore images that do not exist")
    p.add_argument("images", nargs="*", metavar="IMAGE")


def _volume_create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-l", "--label", action="append", default=[], help="set metadata (KEY=VALUE)")
    p.add_argument("-o", "--opt", action="append", default=[], help="driver option (o=nocopy, UID=, GID=)")
    p.add_argument("--ignore", action="store_true", help="do not fail when the volume already exists")
    p.add_argument("name", nargs="?", metavar="NAME")


def _volume_ls_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="name=, label=KEY[=VALUE], driver=, dangling=true|false, anonymous=true|false")
    p.add_argument("--format", help="'json' or a Go template such as {{.Name}}")
    p.add_argument("-q", "--quiet", action="store_true", help="print volume names only")
    p.add_argument("-n", "--noheading", action="store_true", help="do not print the column headings")


def _volume_inspect_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", help="'json' or a Go template such as {{.Mountpoint}}")
    p.add_argument("-a", "--all", action="store_true", help="inspect all volumes")
    p.add_argument("volumes", nargs="*", metavar="VOLUME")


def _volume_rm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="remove the containers that use it first")
    p.add_argument("-a", "--all", action="store_true", help="remove all volumes")
    p.add_argument("volumes", nargs="*", metavar="VOLUME")


def _volume_prune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[], help="only volumes that match (label=, name=)")


def _volume_exists_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("volume", metavar="VOLUME")


def _format_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", help="'json' or a Go template")


def _no_flags(p: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class CommandSpec:
    """One subcommand: its handler key, help line, flags and aliases."""

    key: str
    help: str
    flags: Callable[[argparse.ArgumentParser], None]
    aliases: tuple[str, ...] = ()


def _table(*specs: tuple[str, CommandSpec]) -> dict[str, CommandSpec]:
    return dict(specs)


COMMIT = CommandSpec("commit", "Create a new image from a container's changes", _commit_flags)
EXISTS = CommandSpec("image-exists", "Check if an image exists in local storage", _image_exists_flags)
HISTORY = CommandSpec("image-history", "Show the history of an image", _image_history_flags)
PRUNE = CommandSpec("image-prune", "Remove unused images", _image_prune_flags)
TAG = CommandSpec("image-tag", "Add an additional name to a local image", _image_tag_flags)
UNTAG = CommandSpec("image-untag", "Remove a name from a local image", _image_untag_flags)

CONTAINER_COMMANDS = _table(
    ("attach", CommandSpec("attach", "Attach to a running container", _attach_flags)),
    ("checkpoint", CommandSpec("checkpoint", "Checkpoint one or more running containers with CRIU",
                               _checkpoint_flags)),
    ("clone", CommandSpec("clone", "Create a copy of an existing container", _clone_flags)),
    ("cleanup", CommandSpec("cleanup", "Clean up a container's runtime state and mounts after it exits",
                            _cleanup_flags)),
    ("commit", COMMIT),
    ("cp", CommandSpec("cp", "Copy files/folders between a container and the local filesystem", _cp_flags)),
    ("create", CommandSpec("create", "Create but do not start a container", _create_flags)),
    ("diff", CommandSpec("diff", "Show what a container changed in its root filesystem", _diff_flags)),
    ("events", CommandSpec("events", "Show container events", _events_flags)),
    ("exec", CommandSpec("exec", "Run a process in a running container", _exec_flags)),
    ("exists", CommandSpec("exists", "Check if a container exists in local storage", _exists_flags)),
    ("export", CommandSpec("export", "Export a container's filesystem as a tar archive", _export_flags)),
    ("inspect", CommandSpec("inspect", "Display the configuration and state of containers", _inspect_flags)),
    ("kill", CommandSpec("kill", "Send a signal to one or more containers", _kill_flags)),
    ("logs", CommandSpec("logs", "Show the logs of a container", _logs_flags)),
    ("mount", CommandSpec("mount", "Mount a container's root filesystem", _mount_flags)),
    ("pause", CommandSpec("pause", "Pause all processes of containers", _pause_flags)),
    ("port", CommandSpec("port", "List the published ports of a container", _port_flags)),
    ("ps", CommandSpec("ps", "List containers", _ps_flags, ("ls", "list"))),
    ("restart", CommandSpec("restart", "Restart one or more containers", _restart_flags)),
    ("restore", CommandSpec("restore", "Restore one or more checkpointed containers", _restore_flags)),
    ("rename", CommandSpec("rename", "Rename an existing container", _rename_flags)),
    ("rm", CommandSpec("rm", "Remove one or more containers", _rm_flags, ("remove",))),
    ("run", CommandSpec("run", "Run a command in a new container", _run_flags)),
    ("start", CommandSpec("start", "Start one or more containers", _start_flags)),
    ("stat", CommandSpec("stat", "Show a container path's file information as JSON", _stat_flags)),
    ("stats", CommandSpec("stats", "Show resource usage of containers", _stats_flags)),
    ("stop", CommandSpec("stop", "Stop one or more containers", _stop_flags)),
    ("top", CommandSpec("top", "Show the processes of a container", _top_flags)),
    ("umount", CommandSpec("umount", "Unmount a container's root filesystem", _umount_flags, ("unmount",))),
    ("unpause", CommandSpec("unpause", "Unpause all processes of containers", _pause_flags)),
    ("update", CommandSpec("update", "Update the resource limits of a container", _update_flags)),
    ("wait", CommandSpec("wait", "Wait for containers to reach a condition and print exit codes", _wait_flags)),
)

IMAGE_COMMANDS = _table(
    ("exists", EXISTS),
    ("history", HISTORY),
    ("import", CommandSpec("image-import", "Import a root filesystem tarball as an image", _image_import_flags)),
    ("inspect", CommandSpec("image-inspect", "Display the configuration of images", _image_inspect_flags)),
    ("load", CommandSpec("image-load", "Load an image from a docker-archive or oci-archive", _load_flags)),
    ("ls", CommandSpec("image-ls", "List images", _image_ls_flags, ("list",))),
    ("prune", PRUNE),
    ("pull", CommandSpec("image-pull", "Pull an image from a registry", _pull_flags)),
    ("push", CommandSpec("image-push", "Push an image to a registry or a file transport", _push_flags)),
    ("rm", CommandSpec("image-rm", "Remove images", _image_rm_flags, ("remove",))),
    ("save", CommandSpec("image-save", "Save an image to an archive", _save_flags)),
    ("tag", TAG),
    ("tree", CommandSpec("image-tree", "Print the layers of an image as a tree", _image_tree_flags)),
    ("untag", UNTAG),
)

VOLUME_COMMANDS = _table(
    ("create", CommandSpec("volume-create", "Create a new volume", _volume_create_flags)),
    ("exists", CommandSpec("volume-exists", "Check if the given volume exists", _volume_exists_flags)),
    ("inspect", CommandSpec("volume-inspect", "Display detailed information on one or more volumes",
                            _volume_inspect_flags)),
    ("ls", CommandSpec("volume-ls", "List volumes", _volume_ls_flags, ("list",))),
    ("prune", CommandSpec("volume-prune", "Remove all unused volumes", _volume_prune_flags)),
    ("rm", CommandSpec("volume-rm", "Remove one or more volumes", _volume_rm_flags, ("remove",))),
)

NETWORK_COMMANDS = _table(
    ("reload", CommandSpec("network-reload", "Reload the port forwarding and loopback of containers",
                           _network_reload_flags)),
)

def _checkpoint_ls_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", help="'json' or a Go template such as {{.Entry}} {{.Name}}")
    p.add_argument("-q", "--quiet", action="store_true", help="print entry numbers only")
    p.add_argument("container", metavar="CONTAINER")


def _checkpoint_rm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("entries", nargs="+", metavar="ENTRY", help="entry number or name")


def _checkpoint_prune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="remove every entry, the newest too")
    p.add_argument("-f", "--force", action="store_true",
                   help="do not ask for confirmation (needed without containers: it prunes every container)")
    _containers(p, "*")


#: Words right after ``checkpoint`` that name a command of the history or of what a checkpoint holds
#: (docs/architecture.md §4): ``checkpoint ls CTR``, ``checkpoint inspect ARCHIVE``. A container so named
#: is checkpointed after ``--``: ``checkpoint -- ls``.
CHECKPOINT_COMMANDS = _table(
    ("ls", CommandSpec("checkpoint-ls", "List the checkpoint history of a container", _checkpoint_ls_flags,
                       ("list",))),
    ("rm", CommandSpec("checkpoint-rm", "Remove entries of a container's checkpoint history", _checkpoint_rm_flags,
                       ("remove",))),
    ("prune", CommandSpec("checkpoint-prune", "Remove all but the newest checkpoint of containers",
                          _checkpoint_prune_flags)),
    ("inspect", CommandSpec("checkpoint-inspect", "Show what a checkpoint holds (podman's checkpointctl inspect)",
                            _checkpoint_inspect_flags)),
    ("diff", CommandSpec("checkpoint-diff", "Show what changed between two checkpoints", _checkpoint_diff_flags)),
)

#: Commands whose first argument may be a subcommand word instead of a container.
SUBWORDS: dict[str, dict[str, CommandSpec]] = {"checkpoint": CHECKPOINT_COMMANDS}

#: Commands only at the top level, besides the container commands and the groups.
TOP_COMMANDS = _table(
    ("history", HISTORY),
    ("images", CommandSpec("image-ls", "List images", _image_ls_flags)),
    ("import", CommandSpec("image-import", "Import a root filesystem tarball as an image", _image_import_flags)),
    ("info", CommandSpec("info", "Show what this host can do", _format_flag)),
    ("load", CommandSpec("image-load", "Load an image from a docker-archive or oci-archive", _load_flags)),
    ("pull", CommandSpec("image-pull", "Pull an image from a registry", _pull_flags)),
    ("push", CommandSpec("image-push", "Push an image to a registry or a file transport", _push_flags)),
    ("rmi", CommandSpec("image-rm", "Remove images", _image_rm_flags)),
    ("save", CommandSpec("image-save", "Save an image to an archive", _save_flags)),
    ("tag", TAG),
    ("untag", UNTAG),
    ("version", CommandSpec("version", "Show the version", _no_flags)),
)

def _dashboard_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--connection", action="append", default=[], dest="connections", metavar="NAME",
                   help="a podman connection (system connection ls) shown beside the local store; repeat for several")
    p.add_argument("--all-connections", action="store_true",
                   help="every connection of podman's store (one out of reach is skipped with a line saying so)")


#: Subcommands only a notebook has (they show a widget), parsed by the same grammar as the CLI's.
NOTEBOOK_COMMANDS = _table(
    ("dashboard", CommandSpec("dashboard", "Every container of the local store and of podman connections, live",
                              _dashboard_flags)),
)


def _connection_flags(p: argparse.ArgumentParser) -> None:
    from kernelext.cli.connections import connection_flags

    connection_flags(p)


SYSTEM_COMMANDS = _table(
    ("connection", CommandSpec("system-connection", "Manage remote API service destinations", _connection_flags)),
    ("df", CommandSpec("system-df", "Show kernelext disk usage (checkpoint histories too)", _format_flag)),
)

GROUPS: dict[str, tuple[str, dict[str, CommandSpec]]] = {
    "container": ("Manage containers", {**CONTAINER_COMMANDS, "prune": CommandSpec(
        "container-prune", "Remove all non running containers", _container_prune_flags)}),
    "image": ("Manage images", IMAGE_COMMANDS),
    "network": ("Manage the network of containers", NETWORK_COMMANDS),
    "system": ("Manage kernelext and the podman services it talks to", SYSTEM_COMMANDS),
    "volume": ("Manage volumes", VOLUME_COMMANDS),
}


def _commands_of(group: str | None) -> dict[str, CommandSpec]:
    return GROUPS[group][1] if group else {**CONTAINER_COMMANDS, **TOP_COMMANDS}


def _listing(group: str | None) -> str:
    entries = {name: spec.help for name, spec in _commands_of(group).items()}
    if group is None:
        entries.update({name: text for name, (text, _) in GROUPS.items()})
    width = max(map(len, entries))
    return "Available Commands:\n" + "\n".join(f"  {n.ljust(width)}  {t}" for n, t in sorted(entries.items()))


def command_names(group: str | None = None) -> list[str]:
    """Subcommand names and aliases of the top level or of a group (for completion)."""
    table = _commands_of(group)
    names = set(table) | {alias for spec in table.values() for alias in spec.aliases}
    return sorted(names | (set(GROUPS) if group is None else set()))


def _spec_in(table: dict[str, CommandSpec], name: str) -> CommandSpec | None:
    return table.get(name) or next((s for s in table.values() if name in s.aliases), None)


def command_parser(name: str, group: str | None = None, table: dict[str, CommandSpec] | None = None,
                   ) -> argparse.ArgumentParser:
    """The parser of one subcommand, built on demand (building them all costs start-up time); ``table``:
    a command's own subcommands (``group`` is then the command's words)."""
    spec = _spec_in(table if table is not None else _commands_of(group), name)
    where = f"{PROG} {group}" if group else PROG
    if spec is None:
        raise UsageError(f"unrecognized command `{where} {name}`\nTry '{where} --help' for more information")
    return _spec_parser(spec, f"{where} {name}")


def _spec_parser(spec: CommandSpec, prog: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=spec.help)
    spec.flags(parser)
    parser.set_defaults(cmd=spec.key)
    return parser


def _top_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Manage containers with runc, conmon and CRIU, podman-style.",
                     epilog=_listing(None))
    parser.add_argument("--root", help="storage root directory (env KERNELEXT_ROOT)")
    parser.add_argument("--runroot", help="storage state directory (env KERNELEXT_RUNROOT)")
    parser.add_argument("--criu", help="CRIU binary for checkpoint/restore (env KERNELEXT_CRIU)")
    parser.add_argument("--cgroup-manager", choices=["systemd", "cgroupfs"],
                        help="cgroup manager for new containers (default: systemd where it runs)")
    parser.add_argument("-c", "--connection", help="connection to use for a remote podman service "
                        "(env CONTAINER_CONNECTION)")
    parser.add_argument("--url", help="URL of a podman service: unix://, ssh:// or tcp:// on loopback "
                        "(env CONTAINER_HOST)")
    parser.add_argument("--identity", help="path to SSH identity file (env CONTAINER_SSHKEY)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                        help="log messages at or above this level")
    parser.add_argument("--noout", action="store_true", help="do not print anything to stdout")
    parser.add_argument("--events-backend", default="file", choices=["file", "journald", "none"],
                        help="where events are recorded: file (the store's), none")
    parser.add_argument("command", nargs="?", metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    return parser


#: Flags whose value may start with a dash (``kill -s -INT``), which argparse would take for a flag.
DASH_VALUE_FLAGS: dict[str, tuple[str, ...]] = {"kill": ("-s", "--signal")}


def _dash_values(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``-s -INT`` as ``-s-INT`` (``--signal -INT`` as ``--signal=-INT``): the value kept with its flag."""
    joined: list[str] = []
    values = iter(argv)
    for arg in values:
        value = next(values, None) if arg in flags else None
        joined.append(arg if value is None else f"{arg}={value}" if arg.startswith("--") else arg + value)
    return joined


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    top = _top_parser()
    options = top.parse_args(list(argv))
    if options.command is None:
        raise UsageError(f"missing command\n{top.format_usage().strip()}")
    rest = list(options.args)
    group = options.command if options.command in GROUPS else None
    if group is None:
        name = options.command
    elif rest and not rest[0].startswith("-"):
        name, rest = rest[0], rest[1:]
    elif rest and rest[0] in ("-h", "--help"):
        raise HelpRequested(f"{GROUPS[group][0]}\n\n{_listing(group)}\n")
    else:
        raise UsageError(f"missing command '{PROG} {group} COMMAND'")
    subwords = SUBWORDS.get(name)
    # The top parser drops a "--" right after the command: `checkpoint -- ls` names a container.
    after_dashes = len(argv) > len(rest) and list(argv)[len(argv) - len(rest) - 1] == "--"
    if subwords is not None and rest and not after_dashes and _spec_in(subwords, rest[0]) is not None:
        words = f"{group} {name}" if group else name
        args = command_parser(rest[0], words, subwords).parse_args(rest[1:])
    else:
        args = command_parser(name, group).parse_args(_dash_values(rest, DASH_VALUE_FLAGS.get(name, ())))
    args.root, args.runroot, args.log_level = options.root, options.runroot, options.log_level
    args.criu, args.noout, args.events_backend = options.criu, options.noout, options.events_backend
    args.cgroup_manager = options.cgroup_manager
    args.connection, args.url, args.identity = options.connection, options.url, options.identity
    args.group = group  # "container inspect" inspects containers only, the top-level "inspect" images too
    return args
