"""The remote engine: podman's libpod REST service through podman-py (podman's ``tunnel``).

Requests go through podman-py's client; the two endpoints that take over the connection
(``attach`` and ``exec start``: a raw multiplexed stream after the HTTP response) are read from
a socket of this module's own, since podman-py does not carry them. An ``ssh://`` connection
is an SSH tunnel this module opens (``ssh -L`` to a local socket, in batch mode, so a refused
key fails at once with ssh's reason): podman-py's own SSH transport waits minutes for a tunnel
that failed and turns host-key checking off (docs/architecture.md §16).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Generic, TypeVar, cast

from kernelext.connections import Connection, unreachable
from kernelext.core.events import Event
from kernelext.core.logs import LogLine
from kernelext.domain import reports as rep
from kernelext.domain.engine import ContainerRecord, ImageRecord, Output, StateRecord, unsupported
from kernelext.errors import (
    CommandNotFoundError,
    ContainerStateError,
    CopyError,
    EngineUnsupportedError,
    ImageInUseError,
    InvalidArgumentError,
    KernelextError,
    NameInUseError,
    NoSuchContainerError,
    NoSuchImageError,
    NoSuchVolumeError,
    VolumeInUseError,
)
from kernelext.oci.attach import AttachStream, Stream
from kernelext.storage import staging
from kernelext.units import status_words

if TYPE_CHECKING:
    from kernelext.core.runtime import Runtime
    from kernelext.domain.diskusage import UsageRow
    from kernelext.domain.filters import Filters
    from kernelext.domain.remotefiles import RemoteFiles
    from kernelext.files.confined import FileData
    from kernelext.storage.images import HistoryEntry
    from kernelext.storage.layerdiff import Change

#: The libpod API version the hijacked requests name (podman 4.0 is the oldest with today's endpoints).
API_PREFIX = "/v4.0.0/libpod"
T = TypeVar("T")
#: A multiplexed stream's frame header: stream id, 3 pad bytes, payload length (big endian).
FRAME = struct.Struct(">BxxxL")
STREAMS = {1: "stdout", 2: "stderr"}
#: An ssh_config file the tunnel's ssh reads (``-F``): known hosts, proxies, ciphers of the user's choosing.
SSH_CONFIG_ENV = "KERNELEXT_SSH_CONFIG"
#: Reads of an archive the service streams: large ones (urllib3's small reads cost a third of a copy).
COPY_BUFFER = 1 << 20
#: What podman's own SSH client (Go's) negotiates, put first in OpenSSH's defaults ("^"): OpenSSH 9's first
#: choices (sntrup761x25519, chacha20-poly1305) cost ~80 ms more per tunnel here and a copy's throughput.
SSH_KEX = "curve25519-sha256"
SSH_CIPHER = "aes128-gcm@openssh.com"
#: How long an SSH tunnel may take to come up before the connection is called unreachable, and how often
#: its socket is looked at meanwhile (it takes ~0.1 s: a coarser poll would add to every command).
SSH_TIMEOUT_S = 20.0
SSH_POLL_S = 0.005
#: podman's exit codes: rm of a name that matches nothing; a run whose command is missing or cannot be invoked.
RM_NO_SUCH_EXIT = 1
EXIT_NOT_FOUND = 127
RUN_START_EXIT = 126
#: podman keeps a commit's message only in a docker-format image (the OCI format has no field for it).
COMMIT_MESSAGE_FORMAT = "docker"
_OUT_OF_REACH = "the service mounts it on its own machine, out of this one's reach (podman --remote refuses it too)"
_NO_ENDPOINT = "podman's API has no endpoint for it (podman --remote refuses it too)"
_HISTORY = "kernelext's checkpoint history is kept by the local store; podman's service keeps none"
#: Why the remote engine refuses a command only the local core can do (others: not carried yet).
LOCAL_ONLY = {
    "mount": _OUT_OF_REACH, "umount": _OUT_OF_REACH, "clone": _NO_ENDPOINT, "network-reload": _NO_ENDPOINT,
    "cleanup": "conmon's exit command runs on the container's own machine (podman --remote refuses it too)",
    "exec --preserve-fds": "descriptors of this machine cannot reach a process on the service's",
    "checkpoint-ls": _HISTORY, "checkpoint-rm": _HISTORY, "checkpoint-prune": _HISTORY,
    "checkpoint-inspect": _HISTORY, "checkpoint-diff": _HISTORY, "restore --from": _HISTORY,
    "info": "kernelext's host report describes this machine's runc, conmon and CRIU (podman --remote info "
            "reports the service's)",
}
#: The oldest libpod API an option needs (the release whose handler first reads its query parameter): asked of
#: the service before the call, since an older podman ignores a parameter it does not know rather than refusing.
MINIMUM_API: dict[str, tuple[int, int, int]] = {
    "checkpoint --print-stats": (4, 0, 0), "restore --print-stats": (4, 0, 0),
    "restore --import --print-stats": (4, 0, 0), "restore --import --publish": (4, 0, 0),
}
#: The header each of podman's answers carries with its libpod API version (``/version`` takes ~0.4 s here).
LIBPOD_API_HEADER = "Libpod-API-Version"
#: podman's own reasons a service cannot checkpoint or restore at all (no CRIU, a runtime without it).
NO_CHECKPOINT = ("checkpoint/restore requires at least CRIU", "configured runtime does not support checkpoint/restore")
#: podman's client refuses these as a normal user in its own words; a rootless service has runc run CRIU
#: unprivileged, which fails with nothing but runc's command line: the same words, said for the service.
ROOTLESS_REFUSAL = {"checkpoint": "checkpointing a container requires root",
                    "restore": "restoring a container requires root"}
#: Go's os.FileMode type bits in podman's path stat.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
#: ``update``'s flags by the section of the OCI ``linux.resources`` they set.
UPDATE_SECTIONS = {"memory": "memory", "memory_swap": "memory", "memory_reservation": "memory", "cpus": "cpu",
                   "cpu_shares": "cpu", "cpu_quota": "cpu", "cpu_period": "cpu", "cpuset_cpus": "cpu",
                   "pids_limit": "pids", "device_read_bps": "blockIO"}
#: The ID podman's history endpoint gives a step that is not an image of its own.
MISSING_ID = "<missing>"

class _Tunnel:
    """``ssh -N -L LOCAL:REMOTE user@host``: the remote service's socket as a local one."""

    def __init__(self, connection: Connection) -> None:
        parts = urllib.parse.urlsplit(connection.uri)
        self.directory = Path(tempfile.mkdtemp(prefix="kernelext-ssh-"))
        self.socket = self.directory / "podman.sock"
        # batch mode: a key or host refused fails at once (no prompt a notebook could not answer); a host seen
        # for the first time is remembered, a changed host key refused (ssh's accept-new)
        command = ["ssh", "-N", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
                   "-o", "StrictHostKeyChecking=accept-new", "-o", "StreamLocalBindUnlink=yes",
                   "-o", f"KexAlgorithms=^{SSH_KEX}", "-o", f"Ciphers=^{SSH_CIPHER}",
                   "-L", f"{self.socket}:{parts.path}"]
        if os.environ.get(SSH_CONFIG_ENV):
            command += ["-F", os.environ[SSH_CONFIG_ENV]]
        if parts.port:
            command += ["-p", str(parts.port)]
        if connection.identity:
            command += ["-i", str(Path(connection.identity).expanduser()), "-o", "IdentitiesOnly=yes"]
        command.append(f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname))
        if shutil.which("ssh") is None:
            raise unreachable(connection, "ssh is not installed")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE,
                                        # a killed CLI or kernel leaves no tunnel behind
                                        preexec_fn=staging.die_with_parent)  # noqa: PLW1509 - one prctl, no lock
        deadline = time.monotonic() + SSH_TIMEOUT_S
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                reason = self.process.stderr.read().decode(errors="replace").strip() if self.process.stderr else ""
                raise unreachable(connection, reason.splitlines()[-1] if reason else "ssh tunnel did not open")
            time.sleep(SSH_POLL_S)

    def _listening(self) -> bool:
        """ssh listens on the local socket: it binds before it listens, so the file alone is not enough."""
        return self.socket.exists() and _refusal(str(self.socket)) is None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _refusal(path: str) -> OSError | None:
    """Why a unix socket does not answer a connection; None if it does."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return None
    except OSError as exc:
        return exc
    finally:
        probe.close()


def _message(response: Any) -> str:
    """podman's error message of a failed request (its JSON's ``message``, else the body)."""
    try:
        return str(response.json().get("message") or response.text).strip()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"


def _quoted(name: str) -> str:
    """A name or reference as one segment of an API path."""
    return urllib.parse.quote(name, safe="")


def _error_for(status: int, message: str, name: str | None, *, image: bool = False) -> KernelextError:
    """A failed request as the error podman's CLI shows for it."""
    if status == 404:
        return (NoSuchImageError if image else NoSuchContainerError)(message, container=name)
    if message.endswith("that name is already in use"):  # containers/storage's ErrDuplicateName
        return NameInUseError(message, container=name)
    if status == 409 and image:  # libpod's ErrImageInUse
        return ImageInUseError(message)
    if status == 409 or message.endswith("container state improper"):  # libpod's ErrCtrStateInvalid
        return ContainerStateError(message, container=name)
    if status == 400:
        return InvalidArgumentError(message)
    return KernelextError(message, container=name)


def _start_failure(exc: KernelextError) -> KernelextError:
    """A ``run`` whose start the service refused ends as podman's remote ``run`` does: 127 for a command not
    found, 126 for one that cannot be invoked; a refused argument or a missing container stays as it is."""
    if not isinstance(exc, (NoSuchContainerError, NoSuchImageError, InvalidArgumentError)):
        text = exc.message.lower()
        missing = "not found" in text or "no such file" in text or "executable path is empty" in text
        # the local engine's error for it (a notebook shows the class's name)
        return CommandNotFoundError(exc.message, exit_code=EXIT_NOT_FOUND if missing else RUN_START_EXIT,
                                    container=exc.container)
    return exc


def _timestamp_seconds(text: str) -> float:
    """A Go time (RFC 3339, nanoseconds, maybe zero) as seconds; 0 for Go's zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    from kernelext.core.logs import parse_timestamp

    return parse_timestamp(text.replace("Z", "+00:00"))


def _tar_pieces(source: Path, name: str) -> Iterator[bytes | FileData]:
    """``source`` as tar pieces named ``name`` (:func:`~kernelext.files.confined.tar_pieces`), walked by the
    local copy's confined reader (no NSS lookups, no link followed)."""
    from kernelext.files.confined import Root, tar_pieces, tree_entries

    root = Root.open(source.parent)
    try:
        found = root.resolve(source.name, follow=False)
        try:
            yield from tar_pieces(tree_entries(found, name, contents=False))
        finally:
            found.close()
    finally:
        root.close()


def _send_chunked(sock: socket.socket, head: bytes, pieces: Iterator[bytes | FileData]) -> None:
    """``head`` then a chunked body of ``pieces``: one chunk per file, the headers before it buffered and its
    data moved by ``sendfile(2)`` (no copy through Python, as podman's client moves it)."""
    from kernelext.files.confined import FileData, copy_fd

    out, headers = bytearray(head), bytearray()
    for piece in pieces:
        if not isinstance(piece, FileData):
            headers += piece
            continue
        out += b"%x\r\n" % (len(headers) + piece.size) + headers
        sock.sendall(out)
        out.clear()
        headers.clear()
        left = piece.size - copy_fd(piece.fd, sock.fileno(), piece.size)
        while left:  # a file that shrank meanwhile: zeros, as the local copy's tar stream pads it
            left -= sock.send(bytes(min(left, COPY_BUFFER)))
        out += b"\r\n"
    out += b"%x\r\n" % len(headers) + headers + b"\r\n0\r\n\r\n"
    sock.sendall(out)


def _frames(read: Any) -> Iterator[tuple[str, bytes]]:
    """A multiplexed stream's (stream, payload) frames until it ends."""
    while True:
        head = _read_exact(read, FRAME.size)
        if not head:
            return
        stream, size = FRAME.unpack(head)
        yield STREAMS.get(stream, "stdout"), _read_exact(read, size)


def _read_exact(read: Any, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class RemoteEngine:
    """podman's service as an :class:`~kernelext.domain.engine.Engine`."""

    remote = True

    def __init__(self, connection: Connection) -> None:
        from podman import PodmanClient

        self.connection = connection
        self.name = connection.label
        self._tunnel: _Tunnel | None = None
        self._api_version: str | None = None
        self._rootless: bool | None = None
        scheme = urllib.parse.urlsplit(connection.uri).scheme
        if scheme == "ssh":
            self._tunnel = _Tunnel(connection)
            self.socket: str | None = str(self._tunnel.socket)
            base_url = f"unix://{self._tunnel.socket}"
        elif scheme == "unix":
            parts = urllib.parse.urlsplit(connection.uri)
            self.socket = parts.netloc + parts.path if parts.netloc else parts.path
            base_url = f"unix://{self.socket}"
        else:
            self.socket = None
            base_url = "http://" + urllib.parse.urlsplit(connection.uri).netloc
        try:
            if self.socket is not None and self._tunnel is None:  # the tunnel checked its own socket
                self._probe(self.socket)
            self.client: Any = PodmanClient(base_url=base_url)  # podman-py has no type information
            ping = self._request("GET", "/_ping", raw_path=True)  # unreachable: said now, in one line
            self._api_version = ping.headers.get(LIBPOD_API_HEADER)  # every answer says it: no call of its own
        except BaseException:
            if self._tunnel is not None:
                self._tunnel.close()
            raise

    def _probe(self, path: str) -> None:
        """The socket answers a connection (podman's "dial unix PATH: connect: ..." otherwise)."""
        exc = _refusal(path)
        if exc is not None:
            raise unreachable(self.connection, f"dial unix {path}: connect: {(exc.strerror or str(exc)).lower()}")

    def close(self) -> None:
        self.client.close()
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None

    def local(self, what: str) -> Runtime:
        raise refusal(self.name, what)

    # ------------------------------------------------------------- requests
    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None, data: Any = None,
                 name: str | None = None, image: bool = False, stream: bool = False, raw_path: bool = False,
                 ok: Sequence[int] = (), headers: dict[str, str] | None = None) -> Any:
        """One API call; a failure raised as podman's error (the service's own message)."""
        import requests
        from podman.errors import APIError

        api = self.client.api
        call = {"GET": api.get, "POST": api.post, "PUT": api.put, "DELETE": api.delete, "HEAD": api.head}[method]
        kwargs: dict[str, Any] = {"params": {k: v for k, v in (params or {}).items() if v is not None}}
        if method in ("POST", "PUT") and data is not None:
            kwargs["data"] = data
        if headers:
            kwargs["headers"] = headers
        if stream:
            kwargs["stream"] = True
        try:
            response = call(path, **kwargs) if not raw_path else api.get(path, **kwargs)
        except (requests.ConnectionError, APIError) as exc:  # podman-py: APIError without a response
            raise unreachable(self.connection, str(exc.args[0] if exc.args else exc)) from None
        if response.status_code >= 400 and response.status_code not in ok:
            raise _error_for(response.status_code, _message(response), name, image=image)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _hijack(self, path: str, params: dict[str, Any], body: dict[str, Any] | None = None) -> io.BufferedReader:
        """A request whose connection becomes the stream (attach, exec start), read past the HTTP response."""
        sock, reader = self.hijack(path, params, body)
        sock.close()  # the file object keeps the socket open
        return reader

    def hijack(self, path: str, params: dict[str, Any],
               body: dict[str, Any] | None = None) -> tuple[socket.socket, io.BufferedReader]:
        """:meth:`_hijack` with the socket kept for writing (a terminal's keystrokes)."""
        if self.socket is None:
            raise unsupported(self.name, "attach over tcp://")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.socket)
        except OSError as exc:
            sock.close()
            raise unreachable(self.connection, str(exc)) from None
        query = urllib.parse.urlencode({k: ("true" if v is True else "false" if v is False else v)
                                        for k, v in params.items()})
        payload = json.dumps(body).encode() if body is not None else b""
        sock.sendall((f"POST {API_PREFIX}{path}?{query} HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                      f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                      ).encode() + payload)
        reader = sock.makefile("rb")
        status_line = reader.readline().decode(errors="replace")
        status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
        message = http.client.parse_headers(reader)
        if status >= 400:
            length = int(message.get("Content-Length") or 0)
            text = reader.read(length) if length else reader.read1(65536)
            reader.close()
            try:
                reason = json.loads(text).get("message", "")
            except ValueError:
                reason = text.decode(errors="replace")
            sock.close()
            raise _error_for(status, reason.strip(), None)
        return sock, reader

    # ------------------------------------------------------------- targets
    def _list(self, *, all: bool = True, filters: Filters | None = None) -> list[dict[str, Any]]:
        params = {"all": all, "filters": json.dumps(filters) if filters else None}
        # oldest first, as the local engine lists them (Created is an RFC 3339 time: compared as a time)
        return sorted(self._json("GET", "/containers/json", params=params),
                      key=lambda c: _timestamp_seconds(str(c.get("Created") or "")))

    def _targets(self, names: Sequence[str], *, all: bool = False, latest: bool = False, ignore: bool = False,
                 filters: Filters | None = None) -> list[tuple[str, str]]:
        """(ID, what the user typed) per target; every name looked up first, so a typo acts on nothing."""
        if names and (all or latest):
            raise InvalidArgumentError("--latest and containers cannot be used together" if latest
                                       else "no arguments are needed with --all")
        if filters or all:
            chosen = self._list(filters=filters)
            return [(c["Id"], "") for c in chosen if not names or c["Id"] in names or c["Names"][0] in names]
        if latest:
            listed = self._list()
            return [(listed[-1]["Id"], "")] if listed else []
        if not names:
            raise InvalidArgumentError("you must provide at least one name or id")
        found, missing = [], None
        for name in names:
            try:
                found.append((self._inspect(name)["Id"], name))
            except NoSuchContainerError as exc:
                missing = missing or exc
        if missing is not None and not ignore:
            raise missing
        return found

    def inspect_container(self, name: str) -> dict[str, Any]:
        return self._inspect(name)

    def _inspect(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = self._json("GET", f"/containers/{urllib.parse.quote(name, safe='')}/json", name=name)
        return doc

    def _each(self, kind: type[Any], chosen: Sequence[tuple[str, str]], action: Any,
              result: str | None = None) -> list[Any]:
        done = []
        for ident, raw in chosen:
            try:
                value = action(ident)
            except KernelextError as exc:
                done.append(kind(ident, raw, exc))
                continue
            done.append(kind(ident, raw, None, **({result: value} if result else {})))
        return done

    def _post(self, ident: str, action: str, params: dict[str, Any] | None = None, ok: Sequence[int] = ()) -> Any:
        return self._request("POST", f"/containers/{ident}/{action}", params=params, name=ident, ok=ok)

    # ---------------------------------------------------------- lifecycle
    def _create(self, image: str, options: dict[str, Any]) -> str:
        """``POST /libpod/containers/create`` with the SpecGenerator of ``options`` (kernelext/domain/specgen.py):
        an option with no mapping is refused by name before anything is made."""
        from kernelext.domain.specgen import spec_generator

        spec = spec_generator(image, options, self.name)
        try:
            doc = self._json("POST", "/containers/create", data=json.dumps(spec), name=options.get("name"),
                             headers={"content-type": "application/json"})
        except NoSuchContainerError as exc:  # a 404 of create: the image
            raise NoSuchImageError(exc.message) from None
        return str(doc["Id"])

    def create(self, image: str, **options: Any) -> ContainerRecord:
        return self._record(self._create(image, options))

    def run(self, image: str, **options: Any) -> ContainerRecord:
        """``run -d``; ``--rm`` is podman's own (the service removes the container when it exits)."""
        ident = self._create(image, options)
        try:
            self._post(ident, "start", ok=(304,))
        except KernelextError as exc:
            if options.get("auto_remove"):
                self._request("DELETE", f"/containers/{ident}", params={"force": True}, ok=(404,))
            raise _start_failure(exc) from None
        return self._record(ident)

    def run_attached(self, image: str, *, output: Output, **options: Any) -> int:
        """An attached ``run`` (no stdin): attached before the start so no output is lost, then the exit code;
        ``--rm``: removed once its exit code is known (a remote's ``wait`` cannot outlive the removal)."""
        remove = bool(options.pop("auto_remove", False))
        ident = self._create(image, options)
        try:
            try:
                stream = self._hijack(f"/containers/{ident}/attach",
                                      {"stream": True, "stdout": True, "stderr": True})
            except KernelextError as exc:
                raise _start_failure(exc) from None
            try:
                try:
                    self._post(ident, "start", ok=(304,))
                except KernelextError as exc:
                    raise _start_failure(exc) from None
                for name, data in _frames(stream.read1):
                    output(name, data)
            finally:
                stream.close()
            return int(self._json("POST", f"/containers/{ident}/wait", params={"condition": "exited"}, name=ident))
        finally:
            if remove:
                self._request("DELETE", f"/containers/{ident}", params={"force": True}, ok=(404,))

    def start_one(self, ident: str) -> None:
        """Start one container (a terminal attached first)."""
        try:
            self._post(ident, "start", ok=(304,))
        except KernelextError as exc:
            raise _start_failure(exc) from None

    def wait_exit(self, ident: str, *, remove: bool = False) -> int:
        """The exit code once the container has exited; ``--rm``: removed then (docs/architecture.md §16)."""
        try:
            return int(self._json("POST", f"/containers/{ident}/wait", params={"condition": "exited"}, name=ident))
        finally:
            if remove:
                self._request("DELETE", f"/containers/{ident}", params={"force": True}, ok=(404,))

    def attach_target(self, names: Sequence[str], *, all: bool = False, latest: bool = False) -> str:
        """``start --attach``'s one container (podman's rules, as :func:`kernelext.domain.containers.attach_target`)."""
        if all:
            raise InvalidArgumentError("you cannot start and attach all containers at once")
        if len(names) > 1:
            raise InvalidArgumentError("you cannot start and attach multiple containers at once")
        chosen = self._targets(names, latest=latest)
        if not chosen:
            raise NoSuchContainerError("no containers to act on")
        return chosen[0][0]

    def has_tty(self, name: str) -> bool:
        """Whether the container was made with a TTY (its attach is a terminal, not multiplexed output)."""
        return bool((self._inspect(name).get("Config") or {}).get("Tty"))

    def attach_output(self, name: str, *, start: bool, stdin: bool = False,
                      detach_keys: str | None = None) -> RemoteAttachment:
        """``attach`` and ``start -a``: the container's output as it comes (the API's attach stream:
        multiplexed frames, or a TTY's raw bytes), attached before a start so nothing is lost. As podman's
        remote client: ``attach`` only to a running container (docs/architecture.md §16). ``stdin`` (a
        container made with ``-i``): the same hijacked connection carries input up (:meth:`RemoteAttachment.send`);
        ``detach_keys`` as given by the user, passed to the service as podman's client does."""
        doc = self._inspect(name)
        ident = str(doc["Id"])
        if not start and (doc.get("State") or {}).get("Status") != "running":
            raise ContainerStateError("you can only attach to running containers", container=name)
        stdin = stdin and bool((doc.get("Config") or {}).get("OpenStdin"))
        params: dict[str, Any] = {"stream": True, "stdout": True, "stderr": True, "stdin": stdin}
        if stdin and detach_keys is not None:
            params["detachKeys"] = detach_keys
        sock, reader = self.hijack(f"/containers/{ident}/attach", params)
        attachment = RemoteAttachment(self, ident, sock, reader, tty=bool((doc.get("Config") or {}).get("Tty")))
        if start:
            try:
                self._post(ident, "start", ok=(304,))
            except BaseException:
                attachment.close()
                raise
        return attachment

    def start(self, names: Sequence[str], *, all: bool = False, latest: bool = False,
              filters: Filters | None = None) -> list[rep.StartReport]:
        chosen = self._targets(names, all=all, latest=latest, filters=filters)
        return self._each(rep.StartReport, chosen, lambda i: self._post(i, "start", ok=(304,)))

    def stop(self, names: Sequence[str], *, all: bool = False, latest: bool = False, ignore: bool = False,
             filters: Filters | None = None, timeout: int | None = None) -> list[rep.StopReport]:
        chosen = self._targets(names, all=all, latest=latest, ignore=ignore, filters=filters)
        return self._each(rep.StopReport, chosen, lambda i: self._post(i, "stop", {"timeout": timeout}, ok=(304,)))

    def kill(self, names: Sequence[str], *, signal: str | int = "SIGKILL", all: bool = False,
             latest: bool = False) -> list[rep.KillReport]:
        from kernelext.domain.containers import parse_signal

        sig = parse_signal(signal)
        chosen = self._targets(names, all=all, latest=latest)
        return self._each(rep.KillReport, chosen, lambda i: self._post(i, "kill", {"signal": sig.name}))

    def pause(self, names: Sequence[str], *, all: bool = False, latest: bool = False,
              filters: Filters | None = None) -> list[rep.PauseUnpauseReport]:
        chosen = self._targets(names, all=all, latest=latest, filters=filters)
        return self._each(rep.PauseUnpauseReport, chosen, lambda i: self._post(i, "pause"))

    def unpause(self, names: Sequence[str], *, all: bool = False, latest: bool = False,
                filters: Filters | None = None) -> list[rep.PauseUnpauseReport]:
        chosen = self._targets(names, all=all, latest=latest, filters=filters)
        return self._each(rep.PauseUnpauseReport, chosen, lambda i: self._post(i, "unpause"))

    def restart(self, names: Sequence[str], *, all: bool = False, latest: bool = False, running: bool = False,
                filters: Filters | None = None, timeout: int | None = None) -> list[rep.RestartReport]:
        chosen = ([(c["Id"], "") for c in self._list(all=False)] if running
                  else self._targets(names, all=all, latest=latest, filters=filters))
        return self._each(rep.RestartReport, chosen, lambda i: self._post(i, "restart", {"t": timeout}))

    def rm(self, names: Sequence[str], *, all: bool = False, latest: bool = False, ignore: bool = False,
           force: bool = False, filters: Filters | None = None, timeout: int | None = None,
           volumes: bool = False) -> list[rep.RmReport]:
        try:
            chosen = self._targets(names, all=all, latest=latest, ignore=ignore or force, filters=filters)
        except NoSuchContainerError as exc:
            exc.exit_code = RM_NO_SUCH_EXIT
            raise
        params = {"force": force, "v": volumes, "timeout": timeout}
        return self._each(rep.RmReport, chosen,
                          lambda i: self._request("DELETE", f"/containers/{i}", params=params, name=i))

    def wait(self, names: Sequence[str], *, latest: bool = False, conditions: Sequence[str] = (),
             interval: float = 0.25) -> list[rep.WaitReport]:
        chosen = self._targets(names, latest=latest)
        params = {"condition": list(conditions) or None, "interval": f"{int(interval * 1000)}ms"}
        return self._each(rep.WaitReport, chosen,
                          lambda i: int(self._json("POST", f"/containers/{i}/wait", params=params, name=i)),
                          result="exit_code")

    # ------------------------------------------------------------ looking
    def inspect(self, names: Sequence[str], *, latest: bool = False,
                images: bool = False) -> list[rep.InspectReport]:
        if latest:
            return self._each(rep.InspectReport, self._targets(names, latest=True), self._inspect, "document")
        if not names:
            raise InvalidArgumentError("you must provide at least one name or id")
        def container(name: str) -> rep.InspectReport:
            doc = self._inspect(name)
            return rep.InspectReport(doc["Id"], name, None, document=doc)

        def image(name: str) -> rep.InspectReport:
            doc = self.inspect_image(name)
            return rep.InspectReport(doc["Id"], name, None, document=doc)
        return rep.inspect_names(names, container, image if images else None)

    def _from_list(self, entry: dict[str, Any]) -> ContainerRecord:
        started, exited_at = float(entry.get("StartedAt") or 0), float(entry.get("ExitedAt") or 0)
        state = entry.get("State", "")
        ports = [f"{p['container_port']}/{p.get('protocol', 'tcp')} -> {p.get('host_ip') or '0.0.0.0'}:"
                 f"{p['host_port']}" for p in entry.get("Ports") or []]
        return ContainerRecord(
            id=entry["Id"], name=(entry.get("Names") or [""])[0], image=entry.get("Image", ""),
            image_id=entry.get("ImageID", ""), command=list(entry.get("Command") or []),
            created=_timestamp_seconds(str(entry.get("Created") or "")), state=state,
            status=status_words(state, int(entry.get("ExitCode") or 0), started, exited_at),
            exit_code=int(entry.get("ExitCode") or 0), exited=bool(entry.get("Exited")),
            pid=int(entry.get("Pid") or 0), restart_count=int(entry.get("Restarts") or 0), started_at=started,
            auto_remove=bool(entry.get("AutoRemove")), labels=dict(entry.get("Labels") or {}), ports=ports,
            engine=self.name)

    def _record(self, ident: str) -> ContainerRecord:
        found = self._list(filters={"id": [ident]})
        if not found:
            raise NoSuchContainerError(f'no container with name or ID "{ident}" found: no such container',
                                       container=ident)
        return self._from_list(found[0])

    def ps(self, *, all: bool = False, latest: bool = False, last: int = -1, filters: Filters | None = None,
           sort: str = "created") -> list[ContainerRecord]:
        every = all or bool((filters or {}).get("status")) or last > 0
        records = [self._from_list(entry) for entry in self._list(all=every, filters=filters)]
        if latest:
            records = records[-1:]
        if last > 0:
            records = records[-last:]
        if sort != "created":
            key = {"names": "name", "id": "id", "image": "image", "status": "state"}.get(sort, "created")
            records.sort(key=lambda r: getattr(r, key))
        return records

    def exists(self, name: str) -> bool:
        response = self._request("GET", f"/containers/{urllib.parse.quote(name, safe='')}/exists", ok=(404,))
        return bool(response.status_code == 204)

    def logs(self, names: Sequence[str], *, latest: bool = False, since: float | None = None,
             until: float | None = None, tail: int | None = None,
             follow: bool = False) -> Iterator[tuple[ContainerRecord, LogLine]]:
        if follow and len(names) > 1:
            raise InvalidArgumentError("--follow takes one container here")
        chosen = self._targets(names, latest=latest)
        if follow:
            return self._log_lines(chosen[0][0], since, until, tail, follow=True)
        lines = [item for ident, _ in chosen for item in self._log_lines(ident, since, until, tail)]
        lines.sort(key=lambda item: item[1].timestamp)
        return iter(lines)

    def _log_lines(self, ident: str, since: float | None, until: float | None, tail: int | None, *,
                   follow: bool = False) -> Iterator[tuple[ContainerRecord, LogLine]]:
        record = self._record(ident)
        params = {"stdout": True, "stderr": True, "timestamps": True, "follow": follow,
                  "since": None if since is None else f"{since:.9f}", "until": None if until is None else f"{until:.9f}",
                  "tail": "all" if tail is None else tail}
        response = self._request("GET", f"/containers/{ident}/logs", params=params, name=ident, stream=True)

        def lines() -> Iterator[tuple[ContainerRecord, LogLine]]:
            with contextlib.closing(response):
                for stream, payload in _frames(response.raw.read):
                    stamp, _, data = payload.partition(b" ")
                    yield record, LogLine(stamp.decode(), stream, data)
        return lines()

    def events(self, *, filters: Filters | None = None, since: float | None = None, until: float | None = None,
               stream: bool = False) -> Iterator[Event]:
        params = {"stream": bool(stream and until is None), "filters": json.dumps(filters) if filters else None,
                  "since": None if since is None else str(int(since)),
                  "until": None if until is None else str(int(until))}
        if not params["stream"] and params["until"] is None:
            params["until"] = str(int(time.time()) + 1)  # podman streams without an end; the past is asked here
        response = self._request("GET", "/events", params=params, stream=True)

        def decoded() -> Iterator[Event]:
            with contextlib.closing(response):
                for line in response.iter_lines():
                    if not line:
                        continue
                    yield _event_of(json.loads(line))
        return decoded()

    def top(self, name: str | None, *, latest: bool = False) -> list[dict[str, str]]:
        ident = self._targets([name] if name else [], latest=latest)[0][0]
        doc = self._json("GET", f"/containers/{ident}/top", name=ident)
        return [dict(zip(doc["Titles"], row, strict=False)) for row in doc.get("Processes") or []]

    def stats(self, names: Sequence[str], *, all: bool = False) -> list[dict[str, Any]]:
        chosen = [i for i, _ in self._targets(names)] if names else [c["Id"] for c in self._list(all=all)
                                                                         if c["State"] in ("running", "paused")]
        if not chosen:
            return []
        doc = self._json("GET", "/containers/stats", params={"containers": chosen, "stream": False})
        if doc.get("Error"):
            raise KernelextError(str(doc["Error"]))
        return list(doc.get("Stats") or [])

    def port(self, name: str, private: str | None = None) -> list[str]:
        ports = self._inspect(name).get("NetworkSettings", {}).get("Ports") or {}
        lines = []
        for key, bindings in sorted(ports.items()):
            if private is not None and key not in (private, f"{private}/tcp"):
                continue
            for binding in bindings or []:
                host = f"{binding.get('HostIp') or '0.0.0.0'}:{binding['HostPort']}"
                lines.append(host if private is not None else f"{key} -> {host}")
        return lines

    # ------------------------------------------------------ inside a container
    def exec(self, name: str, command: list[str], *, output: Output, env: Sequence[str] = (),
             workdir: str | None = None, user: str | None = None, tty: bool = False) -> int:
        session = self.exec_session(name, command, env, workdir, user, tty=tty, attach=True)
        stream = self._hijack(f"/exec/{session}/start", {}, {"Detach": False, "Tty": tty})
        try:
            if tty:
                for chunk in iter(lambda: stream.read1(65536), b""):
                    output("stdout", chunk)
            else:
                for stream_name, data in _frames(stream.read1):
                    output(stream_name, data)
        finally:
            stream.close()
        return int(self._json("GET", f"/exec/{session}/json").get("ExitCode") or 0)

    def exec_session(self, name: str, command: list[str], env: Sequence[str], workdir: str | None,
                     user: str | None, *, tty: bool = False, attach: bool = True, stdin: bool = False) -> str:
        """A new exec session in ``name`` (not started): its ID. Created by name, as podman's client does (no
        inspect first: a missing container is the same 404 and message from the exec endpoint)."""
        body = {"Cmd": command, "AttachStdout": attach, "AttachStderr": attach, "AttachStdin": stdin, "Tty": tty,
                "Env": list(env)}
        if workdir:
            body["WorkingDir"] = workdir
        if user:
            body["User"] = user
        return str(self._json("POST", f"/containers/{_quoted(name)}/exec", data=json.dumps(body), name=name,
                              headers={"content-type": "application/json"})["Id"])

    def exec_inspect(self, session: str) -> dict[str, Any]:
        doc: dict[str, Any] = self._json("GET", f"/exec/{session}/json")
        return doc

    def resize_exec(self, session: str, rows: int, cols: int) -> None:
        self._request("POST", f"/exec/{session}/resize", params={"h": rows, "w": cols})

    def resize_container(self, ident: str, rows: int, cols: int) -> None:
        self._post(ident, "resize", {"h": rows, "w": cols})

    def exec_detached(self, name: str, command: list[str], *, env: Sequence[str] = (), workdir: str | None = None,
                      user: str | None = None) -> str:
        """``exec -d``: the session started and left running; its ID."""
        session = self.exec_session(name, command, env, workdir, user, attach=False)
        self._request("POST", f"/exec/{session}/start", data=json.dumps({"Detach": True}),
                      headers={"content-type": "application/json"})
        return session

    def copy(self, source: str, destination: str, *, archive: bool = True, overwrite: bool = False) -> None:
        """``cp`` through the archive endpoints: a tar streamed up (into a directory, or renamed to a new
        name) or down (unpacked with tarfile's ``data`` filter: nothing lands outside the destination)."""
        src_ctr, _, src_path = source.partition(":") if ":" in source else ("", "", source)
        dst_ctr, _, dst_path = destination.partition(":") if ":" in destination else ("", "", destination)
        if bool(src_ctr) == bool(dst_ctr):
            raise unsupported(self.name, "cp between two containers or two host paths")
        if dst_ctr:
            self._copy_in(Path(src_path), dst_ctr, dst_path)
        else:
            self._copy_out(src_ctr, src_path, Path(dst_path), overwrite)

    def state(self, name: str) -> StateRecord:
        """The state from podman's inspect document, and the actions kernelext's state machine allows from it
        (the same rule as a local container's: docs/architecture.md §2)."""
        from kernelext.core.state import ContainerStatus, allowed_actions

        state = self._inspect(name).get("State") or {}
        try:
            status = ContainerStatus(state.get("Status", ""))
        except ValueError:
            status = ContainerStatus.UNKNOWN
        checkpointed = bool(state.get("Checkpointed"))
        return StateRecord(status.value, int(state.get("ExitCode") or 0),
                           status in (ContainerStatus.EXITED, ContainerStatus.STOPPED), str(state.get("Error") or ""),
                           bool(state.get("OOMKilled")), checkpointed, allowed_actions(status, checkpointed=checkpointed))

    def files(self, name: str) -> RemoteFiles:
        """The container's files through the archive endpoints (kernelext/domain/remotefiles.py)."""
        from kernelext.domain.remotefiles import RemoteFiles

        return RemoteFiles(self, name)

    def _path_stat(self, ctr: str, path: str) -> dict[str, Any] | None:
        response = self._request("HEAD", f"/containers/{ctr}/archive", params={"path": path}, name=ctr, ok=(404,))
        if response.status_code == 404:
            return None
        header = response.headers.get("X-Docker-Container-Path-Stat", "")
        return json.loads(base64.b64decode(header)) if header else {}

    def _copy_in(self, source: Path, ctr: str, path: str) -> None:
        if not source.exists():
            raise CopyError(f'"{source}" could not be found on the host')
        ident = self._inspect(ctr)["Id"]
        stat = self._path_stat(ident, path)
        is_dir = bool(int((stat or {}).get("mode", 0)) & (1 << 31))  # Go's os.ModeDir
        target, name = (path, source.name) if is_dir else (str(PurePosixPath(path).parent), PurePosixPath(path).name)
        self._put_archive(f"/containers/{ident}/archive", {"path": target}, _tar_pieces(source, name), ctr)

    def _put_archive(self, path: str, params: dict[str, Any], pieces: Iterator[bytes | FileData], ctr: str) -> None:
        """The PUT of a tar on a connection of its own (requests would copy each chunk twice more)."""
        self._send_archive("PUT", path, params, pieces, ctr)

    def _send_archive(self, method: str, path: str, params: dict[str, Any], pieces: Iterator[bytes | FileData],
                      ctr: str | None) -> bytes:
        """A tar sent as a request's chunked body (its files by ``sendfile``); the answer's body."""
        sock = self._connect()
        try:
            head = (f"{method} {API_PREFIX}{path}?{_query(params)} HTTP/1.1\r\nHost: d\r\n"
                    "Content-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            failed: OSError | None = None
            try:
                _send_chunked(sock, head.encode(), pieces)
            except OSError as exc:  # the service answered early and closed: its answer says why
                failed = exc
            response = http.client.HTTPResponse(sock, method=method)
            try:
                response.begin()
                body = response.read()
            except (OSError, http.client.HTTPException):
                raise unreachable(self.connection, str(failed or "no answer to the archive upload")) from None
            if response.status >= 400:
                raise _error_for(response.status, _message_text(body), ctr)
            if failed is not None:
                raise unreachable(self.connection, str(failed))
            return body
        finally:
            sock.close()

    def _copy_out(self, ctr: str, path: str, destination: Path, overwrite: bool) -> None:
        """The container's tar unpacked by the local copy's confined writer (nothing lands outside the
        destination, set-ID bits dropped, owned by the caller): into an existing directory, or into a staging
        directory beside a new name and renamed to it."""
        ident = self._inspect(ctr)["Id"]
        # HTTP/1.0: the body is the tar itself (no chunk framing to take apart), read in large reads
        sock, reader = self._get_stream(f"/containers/{ident}/archive", {"path": path}, buffering=COPY_BUFFER)
        with contextlib.closing(sock), reader:
            try:
                _check_status(reader, ctr)
            except NoSuchContainerError:  # the container is there (just inspected): the path is not
                raise CopyError(f'"{path}" could not be found on container {ctr}: no such file or directory') from None
            self._unpack(reader, path, destination, overwrite)

    def _unpack(self, archive: io.BufferedReader, path: str, destination: Path, overwrite: bool) -> None:
        from kernelext.core.filecopy import host_policy
        from kernelext.files.confined import O_DIR, FsSink, Root
        from kernelext.files.tarformat import TarReader, open_archive

        into_dir = destination.is_dir()
        if not into_dir and not destination.parent.is_dir():
            raise CopyError(f'"{destination.parent}" could not be found on the host: no such file or directory')
        where = destination if into_dir else Path(tempfile.mkdtemp(prefix=".kernelext-cp-", dir=destination.parent))
        try:
            root = Root.open(where)
            try:
                sink = FsSink(root, os.open(where, O_DIR), "/", host_policy(overwrite=overwrite), shown_dir="/")
                try:
                    sink.put_archive(TarReader(open_archive(archive)))
                finally:
                    sink.close()
            finally:
                root.close()
            if not into_dir:
                os.replace(where / (PurePosixPath(path).name or "."), destination)
        finally:
            if not into_dir:
                shutil.rmtree(where, ignore_errors=True)

    # ------------------------------------------------- checkpoint and restore
    def checkpoint(self, names: Sequence[str], *, all: bool = False, latest: bool = False,
                   **options: Any) -> list[rep.CheckpointReport]:
        chosen = self._targets(names, all=all, latest=latest)
        export = options.pop("export", None)
        if export and len(chosen) > 1:
            raise InvalidArgumentError("--export can only be used with one container")
        self._refuse(options, ("keep", "leave_running", "tcp_established", "ignore_rootfs", "print_stats"),
                     "checkpoint")
        self._require_api(options, {"print_stats": "checkpoint --print-stats"})
        params = {"keep": options.get("keep"), "leaveRunning": options.get("leave_running"),
                  "tcpEstablished": options.get("tcp_established"), "ignoreRootFS": options.get("ignore_rootfs"),
                  "printStats": options.get("print_stats"), "export": bool(export)}

        def one(ident: str) -> Any:
            with self._checkpointing("checkpoint"):
                if export:
                    self._download(f"/containers/{ident}/checkpoint", params, export, ident)
                    return None
                response = self._request("POST", f"/containers/{ident}/checkpoint", params=params, name=ident)
            return response.json() if options.get("print_stats") else None
        return self._each(rep.CheckpointReport, chosen, one, result="statistics")

    def _refuse(self, options: dict[str, Any], carried: Sequence[str], command: str) -> None:
        for key, value in options.items():
            if key not in carried and value not in (None, False, [], "", 0):
                raise unsupported(self.name, f"{command} --{key.replace('_', '-')}")

    def restore(self, names: Sequence[str], *, all: bool = False, latest: bool = False,
                **options: Any) -> list[rep.RestoreReport]:
        chosen = self._targets(names, all=all, latest=latest)
        self._refuse(options, ("keep", "tcp_established", "ignore_rootfs", "print_stats"), "restore")
        self._require_api(options, {"print_stats": "restore --print-stats"})
        params = {"keep": options.get("keep"), "tcpEstablished": options.get("tcp_established"),
                  "ignoreRootFS": options.get("ignore_rootfs")}

        def one(ident: str) -> None:
            with self._checkpointing("restore"):
                self._request("POST", f"/containers/{ident}/restore", params=params, name=ident)
        return self._each(rep.RestoreReport, chosen, one)

    def restore_import(self, archive: str, name: str | None = None, *, publish: Sequence[str] | None = None,
                       **options: Any) -> ContainerRecord:
        """``restore --import``: the archive uploaded (streamed) to the service, which restores it."""
        self._refuse(options, ("keep", "tcp_established", "ignore_rootfs", "print_stats"), "restore --import")
        self._require_api({**options, "publish": publish},
                          {"print_stats": "restore --import --print-stats", "publish": "restore --import --publish"})
        from kernelext.core.checkpoint import archive_container_name
        from kernelext.files.confined import FileData

        params = {"import": True, "name": name, "keep": options.get("keep"),
                  "tcpEstablished": options.get("tcp_established"), "ignoreRootFS": options.get("ignore_rootfs"),
                  "publishPorts": _publish_ports(publish) if publish else None}
        try:
            fd = os.open(archive, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise InvalidArgumentError(f"failed to open checkpoint archive {archive} for import: "
                                       f"{exc.strerror.lower() if exc.strerror else exc}") from None
        try:
            with self._checkpointing("restore", made=lambda: name or archive_container_name(Path(archive))):
                body = self._send_archive("POST", "/containers/import/restore", params,
                                          iter([FileData(fd, os.fstat(fd).st_size)]), name)
        finally:
            os.close(fd)
        doc = json.loads(body)
        return self._record(doc.get("Id") or doc.get("id") or name or "")

    def api_version(self) -> str:
        """The libpod API version the service reports (its answers' header, else ``/version``, asked once)."""
        if self._api_version is None:
            doc = self._json("GET", "/version")
            engine: dict[str, Any] = next((c for c in doc.get("Components") or [] if c.get("Name") == "Podman Engine"), {})
            self._api_version = str((engine.get("Details") or {}).get("APIVersion") or doc.get("Version") or "0")
        return self._api_version

    @contextlib.contextmanager
    def _checkpointing(self, command: str, made: Callable[[], str] | None = None) -> Iterator[None]:
        """A checkpoint or restore call whose failure, when the service cannot do either at all (no CRIU, a
        rootless podman), becomes one line naming the connection and podman's reason; other failures (a
        container in the wrong state, a name taken) pass as the service gave them. ``made``: the name of the
        container an import makes, removed when the service could not restore it (podman 4.3 leaves it; it
        is the import's, since a name already taken fails the import before anything is made)."""
        try:
            yield
        except (NoSuchContainerError, ContainerStateError, NameInUseError, EngineUnsupportedError):
            raise
        except KernelextError as exc:
            if exc.message.startswith(NO_CHECKPOINT):
                refusal = unsupported(self.name, command, exc.message)
            elif self.rootless():
                refusal = unsupported(self.name, command,
                                      f"the service's podman runs rootless: {ROOTLESS_REFUSAL[command]}")
            else:
                raise
            if made is not None:
                with contextlib.suppress(KernelextError):
                    self._request("DELETE", f"/containers/{made()}", params={"force": True}, ok=(404,))
            raise refusal from None

    def rootless(self) -> bool:
        """Whether the service's podman runs as a normal user (its ``/info``), asked once per engine."""
        if self._rootless is None:
            host = self._json("GET", "/info").get("host") or {}
            self._rootless = bool((host.get("security") or {}).get("rootless"))
        return self._rootless

    def _require_api(self, options: Mapping[str, Any], features: Mapping[str, str]) -> None:
        """Refuse, before any call, an option given that the service's podman is too old to honour."""
        for key, feature in features.items():
            if options.get(key):
                reason = api_too_old(feature, self.api_version())
                if reason:
                    raise unsupported(self.name, feature, reason)

    def _download(self, path: str, params: dict[str, Any], destination: str, name: str) -> None:
        """A POST whose answer is an archive, written to ``destination`` as it arrives, on a connection of the
        engine's own and in the kernel (requests' 10 KiB reads cost more than the transfer). A failure leaves
        no file behind (and a device or FIFO named as the destination is written into, never removed)."""
        from kernelext.files.whole import whole_file

        sock, reader = self._get_stream(path, params, buffering=COPY_BUFFER, method="POST")
        with contextlib.closing(sock), reader:
            _check_status(reader, name)
            with whole_file(destination) as out:
                out.write(reader.read1(COPY_BUFFER))  # what the reader holds past the headers
                out.flush()
                _splice_all(sock.fileno(), out.fileno())

    # -------------------------------------------------------------- images
    def images(self) -> list[ImageRecord]:
        return [ImageRecord(doc["Id"].removeprefix("sha256:"), list(doc.get("Names") or doc.get("RepoTags") or []),
                            float(doc.get("Created") or 0), int(doc.get("Size") or 0), self.name)
                for doc in self._json("GET", "/images/json")]

    def pull(self, reference: str, *, tls_verify: bool = True) -> str:
        """``pull`` by the service (from where the service stands): the new image's ID."""
        response = self._request("POST", "/images/pull", params={"reference": reference, "quiet": True,
                                                                 "tlsVerify": tls_verify},
                                 image=True, stream=True)
        ident = ""
        with contextlib.closing(response):
            for line in response.iter_lines():
                doc = json.loads(line) if line else {}
                if doc.get("error"):
                    raise KernelextError(doc["error"])
                ident = doc.get("id") or ident
        return ident

    def remove_image(self, name: str, *, force: bool = False) -> list[str]:
        doc = self._json("DELETE", f"/images/{_quoted(name)}", params={"force": force}, image=True)
        return ([f"Untagged: {tag}" for tag in doc.get("Untagged") or []] +
                [f"Deleted: {ident}" for ident in doc.get("Deleted") or []])

    def inspect_image(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = self._json("GET", f"/images/{_quoted(name)}/json", image=True)
        return doc

    def image_exists(self, name: str) -> bool:
        return bool(self._request("GET", f"/images/{_quoted(name)}/exists", ok=(404,)).status_code == 204)

    def tag(self, name: str, *targets: str) -> None:
        """``tag``: each target a new name of the service's image (``REPO[:TAG]``, ``latest`` by default)."""
        from kernelext.storage.images import repo_tag

        for target in targets:
            repository, tag = repo_tag(target)
            self._request("POST", f"/images/{_quoted(name)}/tag", params={"repo": repository, "tag": tag},
                          image=True, ok=(201,))

    # ------------------------------------------------- live streams (widgets)
    def watch_events(self, *, filters: Filters | None = None) -> _SocketStream[Event]:
        """podman's event stream from now on, on a connection of its own that ``close()`` shuts (a widget's
        thread blocked on it wakes at once)."""
        # From this second on, replayed from the service's event log: an event between this call and the
        # service's subscription (it answers with the first event) is not lost; a repeat is harmless.
        stream = self._get_stream("/events", {"stream": True, "filters": json.dumps(filters) if filters else None,
                                              "since": str(int(time.time()))})
        return _SocketStream(stream, lambda reader: (_event_of(json.loads(line)) for line in reader if line.strip()))

    def follow_logs(self, name: str, *, since: float | None = None) -> _SocketStream[LogLine]:
        ident = self._targets([name])[0][0]
        stream = self._get_stream(f"/containers/{ident}/logs", {
            "stdout": True, "stderr": True, "timestamps": True, "follow": True,
            "since": None if since is None else f"{since:.9f}"})

        def lines(reader: io.BufferedReader) -> Iterator[LogLine]:
            for kind, payload in _frames(reader.read):
                stamp, _, data = payload.partition(b" ")
                yield LogLine(stamp.decode(), kind, data)
        return _SocketStream(stream, lines)

    def _connect(self) -> socket.socket:
        """A connection of the engine's own to the service (its unix socket, the tunnel's, or loopback TCP)."""
        if self.socket is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = self.socket
        else:
            sock, address = socket.socket(), urllib.parse.urlsplit(self.connection.uri).netloc.rsplit(":", 1)
            address = (address[0], int(address[1]))
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            raise unreachable(self.connection, str(exc)) from None
        return sock

    def _get_stream(self, path: str, params: dict[str, Any], buffering: int = -1,
                    method: str = "GET") -> tuple[socket.socket, io.BufferedReader]:
        """A GET (or a POST without a body) whose body streams until the service or ``shutdown`` ends it:
        HTTP/1.0, so the body is the raw stream (no chunk framing) and the socket is this caller's to shut from
        another thread. The response is read by the stream's reader (podman sends a follow's headers with its
        first line)."""
        sock = self._connect()
        length = "Content-Length: 0\r\n" if method == "POST" else ""
        sock.sendall(f"{method} {API_PREFIX}{path}?{_query(params)} HTTP/1.0\r\nHost: d\r\n{length}\r\n".encode())
        return sock, cast(io.BufferedReader, sock.makefile("rb", buffering))  # buffered: -1 or a size


    # ----------------------------------- volumes, a container's filesystem, image archives (§16)
    def exec_with_input(self, name: str, command: list[str], stdin: BinaryIO, *, output: Output,
                        env: Sequence[str] = (), workdir: str | None = None, user: str | None = None) -> int:
        """``exec -i`` without a terminal: the session's hijacked connection carries ``stdin`` up (a thread;
        its end is a half-close, which the service passes on as the command's end of input) and the
        multiplexed output down."""
        import threading

        session = self.exec_session(name, command, env, workdir, user, attach=True, stdin=True)
        sock, stream = self.hijack(f"/exec/{session}/start", {}, {"Detach": False, "Tty": False})

        def feed() -> None:
            with contextlib.suppress(OSError):  # the command may exit before reading all of it
                for chunk in iter(lambda: stdin.read1(COPY_BUFFER) if hasattr(stdin, "read1")
                                  else stdin.read(COPY_BUFFER), b""):
                    sock.sendall(chunk)
                sock.shutdown(socket.SHUT_WR)
        feeder = threading.Thread(target=feed, daemon=True, name=f"kernelext-exec-stdin-{session[:12]}")
        feeder.start()
        try:
            for stream_name, data in _frames(stream.read1):
                output(stream_name, data)
        finally:
            stream.close()
            sock.close()
        return int(self.exec_inspect(session).get("ExitCode") or 0)

    def _volume_call(self, method: str, path: str, name: str | None = None, **kwargs: Any) -> Any:
        """A volume endpoint's call, its failures as the local store's errors (same text, same exit codes)."""
        try:
            return self._request(method, path, **kwargs)
        except NoSuchContainerError:  # the service's 404
            raise NoSuchVolumeError(f'no volume with name "{name}" found: no such volume') from None
        except ContainerStateError as exc:  # the service's 409: libpod's ErrVolumeBeingUsed, the local text
            raise VolumeInUseError(exc.message) from None
        except KernelextError as exc:
            if exc.message.endswith("volume already exists"):
                raise NameInUseError(exc.message) from None
            raise

    def volume_create(self, name: str | None, *, labels: Mapping[str, str] | None = None,
                      options: Mapping[str, str] | None = None, ignore: bool = False) -> str:
        """``volume create``; ``--ignore`` asked of the service first (podman 4.3's API has no such flag)."""
        if ignore and name and self.volume_exists(name):
            return name
        body = {"Name": name or "", "Labels": dict(labels or {}), "Options": dict(options or {})}
        doc = self._volume_call("POST", "/volumes/create", name, data=json.dumps(body),
                                headers={"content-type": "application/json"}).json()
        return str(doc["Name"])

    def volumes(self, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
        from kernelext.domain.filters import parse_filters

        wanted = parse_filters(filters)
        docs: list[dict[str, Any]] = self._json("GET", "/volumes/json",
                                                params={"filters": json.dumps(wanted) if wanted else None})
        return sorted(docs or [], key=lambda d: _timestamp_seconds(str(d.get("CreatedAt") or "")))

    def volume_inspect(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = self._volume_call("GET", f"/volumes/{_quoted(name)}/json", name).json()
        return doc

    def volume_remove(self, name: str, *, force: bool = False) -> str:
        self._volume_call("DELETE", f"/volumes/{_quoted(name)}", name, params={"force": force})
        return name

    def volume_prune(self, filters: Sequence[str] = ()) -> list[str]:
        from kernelext.domain.filters import parse_filters

        wanted = parse_filters(filters)
        return _pruned(self._json("POST", "/volumes/prune", params={"filters": json.dumps(wanted) if wanted else None}))

    def volume_exists(self, name: str) -> bool:
        return bool(self._request("GET", f"/volumes/{_quoted(name)}/exists", ok=(404,)).status_code == 204)

    def diff(self, name: str | None, *, latest: bool = False) -> list[Change]:
        """``diff`` by the service's ``changes`` (Kind 0, 1, 2: changed, added, deleted), sorted by path as
        the local engine lists them."""
        from kernelext.storage.layerdiff import Change, ChangeKind

        chosen = self._targets([name] if name else [], latest=latest)
        if not chosen:
            raise NoSuchContainerError("no containers to act on", container=name)
        kinds = (ChangeKind.CHANGED, ChangeKind.ADDED, ChangeKind.DELETED)
        changes = self._json("GET", f"/containers/{chosen[0][0]}/changes", name=name) or []
        return sorted(Change(doc["Path"], kinds[int(doc["Kind"])]) for doc in changes)

    def export(self, name: str, out: BinaryIO) -> None:
        """``export``: the service's tar of the container's root filesystem, streamed to ``out``."""
        ident = self._inspect(name)["Id"]
        # a raw HTTP/1.0 read (no chunk framing to undo, large reads): urllib3's stream costs a third more
        stream = _SocketStream(self._get_stream(f"/containers/{ident}/export", {}),
                               lambda reader: iter(lambda: reader.read1(COPY_BUFFER), b""))
        try:
            out.writelines(stream)
        finally:
            stream.close()

    def commit(self, container: str, image: str | None = None, *, changes: Sequence[str] = (), message: str = "",
               author: str = "", pause: bool = True) -> str:
        """``commit`` by the service; a ``--message`` makes it a docker-format image (podman keeps a message
        only there: docs/architecture.md §16)."""
        from kernelext.storage.images import repo_tag

        ident = self._inspect(container)["Id"]
        repository, tag = repo_tag(image) if image else (None, None)
        params = {"container": ident, "repo": repository, "tag": tag, "comment": message or None,
                  "author": author or None, "pause": pause, "changes": list(changes) or None,
                  "format": COMMIT_MESSAGE_FORMAT if message else None}
        return str(self._json("POST", "/commit", params=params, name=container)["Id"]).removeprefix("sha256:")

    def update(self, name: str, **resources: Any) -> str:
        """``update``: the given limits over the container's (as the service shows them), checked as the local
        engine checks them; only the cgroup sections of the flags given are sent, as podman's own CLI does
        (podman 4.3's inspect shows the create-time limits, not an earlier update's: those stay untouched)."""
        from kernelext.oci.resources import Resources

        doc = self._inspect(name)
        host = doc.get("HostConfig") or {}
        memory, swap = int(host.get("Memory") or 0), int(host.get("MemorySwap") or 0)
        current = Resources(memory=memory, memory_swap=0 if swap == 2 * memory else swap,
                            memory_reservation=int(host.get("MemoryReservation") or 0),
                            nano_cpus=int(host.get("NanoCpus") or 0), cpu_shares=int(host.get("CpuShares") or 0),
                            cpu_quota=int(host.get("CpuQuota") or 0), cpu_period=int(host.get("CpuPeriod") or 0),
                            cpuset_cpus=str(host.get("CpusetCpus") or ""),
                            pids_limit=max(int(host.get("PidsLimit") or 0), 0))
        given = {section for key, section in UPDATE_SECTIONS.items() if resources.get(key) not in (None, [])}
        body = {k: v for k, v in current.updated(**resources).linux_resources().items() if k in given}
        self._request("POST", f"/containers/{doc['Id']}/update", data=json.dumps(body), name=name,
                      headers={"content-type": "application/json"}, ok=(201,))
        return str(doc["Id"])

    def rename(self, name: str, new_name: str) -> None:
        ident = self._inspect(name)["Id"]
        try:
            self._request("POST", f"/containers/{ident}/rename", params={"name": new_name}, name=name, ok=(204,))
        except ContainerStateError as exc:  # the service's 409: the name is taken (podman's text)
            raise NameInUseError(exc.message) from None

    def prune_containers(self, filters: Sequence[str] = ()) -> list[str]:
        from kernelext.domain.filters import parse_filters

        wanted = parse_filters(filters)
        return _pruned(self._json("POST", "/containers/prune",
                                  params={"filters": json.dumps(wanted) if wanted else None}))

    def stat(self, name: str, path: str) -> dict[str, Any]:
        """``stat`` by the archive endpoint's HEAD (podman's path stat); a link is stat'ed again at its target,
        as the local engine resolves it."""
        ident = self._inspect(name)["Id"]
        found = self._path_stat(ident, path)
        if found is not None and int(found.get("mode", 0)) & GO_MODE_SYMLINK and found.get("linkTarget"):
            found = self._path_stat(ident, str(found["linkTarget"]))
        if found is None:
            raise CopyError(f'"{path}" could not be found on container {name}: no such file or directory')
        mode = int(found.get("mode", 0))
        return {"name": found.get("name", ""), "size": int(found.get("size", 0)), "mode": mode,
                "mtime": found.get("mtime", ""), "isDir": bool(mode & GO_MODE_DIR),
                "linkTarget": found.get("linkTarget") or path}

    def disk_usage(self) -> list[UsageRow]:
        """``system df``'s rows from the service's report, summed as podman's CLI sums them (no checkpoint
        histories: the service keeps none)."""
        from kernelext.domain.diskusage import UsageRow

        doc = self._json("GET", "/system/df")
        images, containers, volumes = doc.get("Images") or [], doc.get("Containers") or [], doc.get("Volumes") or []
        running = [c for c in containers if c.get("Status") in ("running", "paused")]
        return [
            UsageRow("Images", len(images), sum(1 for i in images if i.get("Containers")),
                     sum(int(i["Size"]) for i in images),
                     sum(int(i["Size"]) for i in images if not i.get("Containers"))),
            UsageRow("Containers", len(containers), len(running), sum(int(c["RWSize"]) for c in containers),
                     sum(int(c["RWSize"]) for c in containers if c not in running)),
            UsageRow("Local Volumes", len(volumes), sum(1 for v in volumes if v.get("Links")),
                     sum(int(v["Size"]) for v in volumes), sum(int(v["ReclaimableSize"]) for v in volumes)),
        ]

    def image_history(self, name: str) -> tuple[list[str], list[HistoryEntry]]:
        from kernelext.storage.images import HistoryEntry

        tags = list(self._image_doc(name).get("RepoTags") or [])
        steps = self._json("GET", f"/images/{_quoted(name)}/history", image=True) or []
        return tags, [HistoryEntry(None if doc.get("Id") in (None, "", MISSING_ID) else str(doc["Id"]),
                                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(doc.get("Created") or 0))),
                                   str(doc.get("CreatedBy") or ""), int(doc.get("Size") or 0),
                                   str(doc.get("Comment") or "")) for doc in steps]

    def save_image(self, name: str, output: str, *, format: str = "docker-archive") -> None:
        """``save -o``: the service's archive streamed into a file beside ``output``, renamed to it once whole
        (a failure leaves no partial archive)."""
        from kernelext.files.whole import whole_file

        response = self._request("GET", f"/images/{_quoted(name)}/get", params={"format": format}, image=True,
                                 stream=True)
        with contextlib.closing(response), whole_file(output) as f:
            shutil.copyfileobj(response.raw, f, COPY_BUFFER)

    def load_image(self, archive: str | BinaryIO, *, progress: Any = None) -> list[str]:
        """``load``: the archive (a file, or stdin) streamed to the service; the names it loaded."""
        with contextlib.ExitStack() as stack:
            body = stack.enter_context(open(archive, "rb")) if isinstance(archive, str) else archive
            doc = self._json("POST", "/images/load", data=body, headers={"content-type": "application/x-tar"},
                             image=True)
        return [str(n) for n in doc.get("Names") or []]

    def prune_images(self, *, all: bool = False, until: float | None = None, labels: Sequence[str] = (),
                     not_labels: Sequence[str] = ()) -> list[str]:
        wanted = {key: values for key, values in (("until", [str(int(until))] if until is not None else []),
                                                  ("label", list(labels)), ("label!", list(not_labels))) if values}
        return _pruned(self._json("POST", "/images/prune", params={"all": all, "filters": json.dumps(wanted) if wanted
                                                                   else None}, image=True))

    def _image_doc(self, name: str) -> dict[str, Any]:
        """``image inspect``, a missing image as the local store says it (without the service's "failed to find
        image NAME: " in front)."""
        try:
            return self.inspect_image(name)
        except NoSuchImageError as exc:
            raise NoSuchImageError(exc.message.removeprefix(f"failed to find image {name}: ")) from None

    def untag(self, name: str, *names: str) -> None:
        """``untag``: each name off the image; without names, the service takes them all off."""
        from kernelext.storage.images import repo_tag

        ident = self._image_doc(name)["Id"]  # every name checked against one image, as locally
        targets: list[tuple[str | None, str | None]] = [repo_tag(n) for n in names] or [(None, None)]
        for target in targets:
            try:
                self._request("POST", f"/images/{ident}/untag", params={"repo": target[0], "tag": target[1]},
                              image=True, ok=(201,))
            except KernelextError as exc:  # the service's 500 of a name the image does not have: the local error
                if not exc.message.endswith("tag not known"):
                    raise
                raise NoSuchImageError(exc.message) from None

    def import_image(self, tarball: str | BinaryIO, name: str | None = None, *,
                     cmd: Sequence[str] | None = None) -> str:
        """``import``: the tarball (a file, or stdin) streamed to the service; the new image's ID."""
        if isinstance(tarball, str) and not os.path.isfile(tarball):
            raise InvalidArgumentError(f"{tarball}: no such file")  # the local store's line
        params = {"reference": name, "changes": [f"CMD {json.dumps(list(cmd))}"] if cmd is not None else None}
        with contextlib.ExitStack() as stack:
            body = stack.enter_context(open(tarball, "rb")) if isinstance(tarball, str) else tarball
            doc = self._json("POST", "/images/import", params=params, data=body,
                             headers={"content-type": "application/x-tar"}, image=True)
        return str(doc["Id"]).removeprefix("sha256:")

    def image_tree(self, name: str, *, whatrequires: bool = False) -> list[str]:
        """podman's own tree text (its sizes as podman writes them; no "Shared by", kernelext's addition)."""
        self._image_doc(name)
        doc = self._json("GET", f"/images/{_quoted(name)}/tree", params={"whatrequires": whatrequires}, image=True)
        return str(doc.get("Tree") or "").rstrip("\n").split("\n")

    def push(self, name: str, destination: str | None = None, *, tls_verify: bool = True,
             authfile: str | None = None, progress: Any = None) -> None:
        """``push`` by the service, from where it stands, with its own credentials: to a registry only (a
        file transport would write on the service's machine)."""
        from kernelext.storage.images import file_transport

        if authfile:
            raise unsupported(self.name, "push --authfile", "the service pushes with its own credentials")
        if destination and file_transport(destination) is not None:
            raise unsupported(self.name, f"push {destination}", "the service would write it on its own machine")
        response = self._request("POST", f"/images/{_quoted(name)}/push", image=True, stream=True, params={
            "destination": (destination or name).removeprefix("docker://"), "tlsVerify": tls_verify})
        with contextlib.closing(response):
            for line in response.iter_lines():
                doc = json.loads(line) if line else {}
                if doc.get("error"):
                    raise KernelextError(str(doc["error"]).strip())


def _pruned(done: list[dict[str, Any]] | None) -> list[str]:
    """A prune endpoint's answer: the IDs (or names) removed; the first failure raised after the rest went."""
    failed = [str(d["Err"]) for d in done or [] if d.get("Err")]
    if failed:
        raise KernelextError(failed[0])
    return [str(d["Id"]).removeprefix("sha256:") for d in done or []]


def _splice_all(source: int, destination: int) -> None:
    """The rest of a socket's stream into a file through a pipe, in the kernel (``splice(2)``): no copy through
    Python, as the service's own ``io.Copy`` on its side."""
    import fcntl

    pipe_out, pipe_in = os.pipe2(os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):  # a larger pipe: fewer calls (the unprivileged limit is 1 MiB)
            fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, COPY_BUFFER)
        while moved := os.splice(source, pipe_in, COPY_BUFFER):
            while moved:
                moved -= os.splice(pipe_out, destination, moved)
    finally:
        os.close(pipe_out)
        os.close(pipe_in)


def _query(params: Mapping[str, Any]) -> str:
    """A query string as podman's client writes it: booleans as true/false, unset options left out."""
    return urllib.parse.urlencode({k: ("true" if v is True else "false" if v is False else v)
                                   for k, v in params.items() if v is not None})


def _publish_ports(publish: Sequence[str]) -> str:
    """``--publish`` values as the restore handler's ``publishPorts`` (split on white space), parsed by the local
    parser first so a bad one is refused as locally and a port with no address keeps kernelext's loopback rule
    (podman's own default would be every interface)."""
    from kernelext.core import ports as ports_mod

    def address(ip: str) -> str:
        return f"[{ip}]" if ":" in ip else ip
    return " ".join(f"{address(m.host_ip)}:{m.host_port or ''}:{m.container_port}/{m.protocol.value}"
                    for m in ports_mod.parse_all(publish))


def api_too_old(feature: str, have: str) -> str | None:
    """Why a service reporting libpod API ``have`` cannot do ``feature`` (:data:`MINIMUM_API`), or None."""
    need = MINIMUM_API.get(feature)
    if need is None:
        return None
    try:
        version = tuple(int(part) for part in have.split("-")[0].split(".")[:3])
    except ValueError:  # a version this code cannot read: let the service answer for itself
        return None
    if version >= need:
        return None
    return f"the service's podman (API {have}) is older than {'.'.join(map(str, need))}, which it needs"


def refusal(engine: str, what: str) -> EngineUnsupportedError:
    """The one line for a command the remote engine does not carry: why, where the API cannot do it."""
    shown = what if " " in what else what.replace("-", " ")  # a subcommand as typed: "checkpoint ls"
    return unsupported(engine, shown, *[reason for reason in [LOCAL_ONLY.get(what)] if reason])

def _check_status(reader: io.BufferedReader, name: str | None) -> None:
    """Read a response's status line and headers; a failure raised as podman's error."""
    status_line = reader.readline().decode(errors="replace").split()
    http.client.parse_headers(reader)
    status = int(status_line[1]) if len(status_line) > 1 else 0
    if status >= 400:
        raise _error_for(status, _message_text(reader.read()), name)



def _message_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message", "")).strip()
    except ValueError:
        return body.decode(errors="replace").strip()


def _event_of(doc: dict[str, Any]) -> Event:
    """One line of podman's event stream as kernelext's event."""
    attrs = dict((doc.get("Actor") or {}).get("Attributes") or {})
    name, image = attrs.pop("name", ""), attrs.pop("image", "")
    stamp = int(doc["timeNano"]) / 1e9 if doc.get("timeNano") else float(doc.get("time", 0))
    return Event(stamp, doc.get("Type", ""), doc.get("Action") or doc.get("status", ""),
                 (doc.get("Actor") or {}).get("ID", ""), name, image, attrs)


class _SocketStream(Generic[T]):
    """A streamed response read in a thread; ``close()`` from another thread shuts the socket down, which
    ends the blocked read (closing alone would not wake it)."""

    def __init__(self, stream: tuple[socket.socket, io.BufferedReader],
                 decode: Callable[[io.BufferedReader], Iterator[T]]) -> None:
        self._sock, self._reader = stream
        self._decode = decode
        self._closed = False

    def __iter__(self) -> Iterator[T]:
        try:
            _check_status(self._reader, None)
            yield from self._decode(self._reader)
        except (OSError, ValueError):
            if not self._closed:
                raise

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class RemoteAttachment(AttachStream):
    """A remote container's output from its attach stream, shaped as a local
    :class:`~kernelext.oci.attach.AttachSocket` (``recv``, ``packets``, ``sock``, ``close``) so the front ends
    stream it as they stream a local one; ``close()`` from any thread detaches (the container runs on);
    :meth:`wait` is the container's exit code once it has exited."""

    def __init__(self, engine: RemoteEngine, ident: str, sock: socket.socket, reader: io.BufferedReader, *,
                 tty: bool) -> None:
        self.engine, self.id, self.sock, self.tty = engine, ident, sock, tty
        self._reader = reader
        self._closed = False
        self._since = time.time() - 1  # its died event is after the attach (whole seconds in the API)
        # bytes read but not yet returned: an interrupt (a cell's stop button) between two reads of a frame
        # loses nothing, and the next recv goes on where it was
        self._pending = bytearray()

    def _fill(self, size: int) -> bool:
        while len(self._pending) < size:
            chunk = self._reader.read1(COPY_BUFFER)
            if not chunk:
                return False
            self._pending += chunk
        return True

    def recv(self) -> tuple[Stream, bytes] | None:
        """The next chunk of output (a frame; a TTY's bytes as they come), None at its end or once closed; a
        socket timeout is raised."""
        try:
            if self.tty:
                if not self._fill(1):
                    return None
                data, self._pending = bytes(self._pending), bytearray()
                return Stream.STDOUT, data
            if not self._fill(FRAME.size):
                return None
            kind, size = FRAME.unpack_from(self._pending)
            if not self._fill(FRAME.size + size):
                return None
            data = bytes(self._pending[FRAME.size:FRAME.size + size])
            del self._pending[:FRAME.size + size]
        except (OSError, ValueError) as exc:
            if isinstance(exc, TimeoutError) or not self._closed:
                raise
            return None
        return Stream[STREAMS.get(kind, "stdout").upper()], data

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._reader.close()
        self.sock.close()

    def wait(self) -> int:
        """The container's exit code once it has exited; one the service removed meanwhile (``--rm``) from its
        ``died`` event, as podman's remote client reads it."""
        try:
            return self.engine.wait_exit(self.id)
        except NoSuchContainerError:
            died = [e for e in self.engine.events(filters={"container": [self.id], "event": ["died"]}, since=self._since)
                    if "containerExitCode" in e.attributes]
            if not died:
                raise
            return int(died[-1].attributes["containerExitCode"])
