"""Moving images between transports with skopeo (the containers project's own image mover).

Registries, ``registries.conf``, short names, TLS, auth files and every archive
format are skopeo's business: kernelext never speaks the registry protocol itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from kernelext.errors import RuntimeFailure, tool_reason
from kernelext.storage import staging
from kernelext.storage.progress import Phase, Progress, ProgressCallback

SKOPEO = "skopeo"
DOCKER_TRANSPORT = "docker://"
OCI_TRANSPORT = "oci:"
#: podman's and buildah's own store on this host (``/var/lib/containers/storage`` as root).
CONTAINERS_STORAGE_TRANSPORT = "containers-storage:"
#: The registries.conf podman reads instead of /etc/containers/registries.conf (e.g. a plain-HTTP registry).
ENV_REGISTRIES_CONF = "CONTAINERS_REGISTRIES_CONF"
#: A pull of a large image over a slow link may take long; a hung skopeo must not hang kernelext forever.
COPY_TIMEOUT_S = 3600
#: How often a reported copy's written bytes are measured.
POLL_S = 0.2
#: skopeo logs its failure as logrus does: time="..." level=fatal msg="REASON" (REASON quoted as Go's %q).
_LOGRUS_MESSAGE = re.compile(r'level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class CopyOptions:
    """``tls_verify``: False for a plain-HTTP or self-signed registry (``--tls-verify=false``)."""

    tls_verify: bool = True
    authfile: str | None = None
    #: For a normal user without ``$XDG_RUNTIME_DIR``: where skopeo looks for ``containers/auth.json``
    #: (otherwise /run/containers/UID, unreadable once root has used podman); the store's private runroot.
    runtime_dir: str | None = None


def docker_reference(ref: str) -> str:
    """``docker://REF`` for a reference given with or without the transport."""
    return ref if ref.startswith(DOCKER_TRANSPORT) else DOCKER_TRANSPORT + ref


def _argv(command: str, src: str, dest: str | None, options: CopyOptions) -> list[str]:
    argv = [SKOPEO, command]
    if options.runtime_dir and not os.environ.get("XDG_RUNTIME_DIR"):
        argv = ["env", f"XDG_RUNTIME_DIR={options.runtime_dir}", *argv]
    if os.environ.get(ENV_REGISTRIES_CONF):  # podman's variable; skopeo reads it only as a flag
        argv.insert(argv.index(SKOPEO) + 1, f"--registries-conf={os.environ[ENV_REGISTRIES_CONF]}")
    sides = (("src", src), ("dest", dest)) if dest is not None else (("", src),)
    for side, ref in sides:
        if ref and ref.startswith(DOCKER_TRANSPORT):
            prefix = f"--{side}-" if side else "--"
            if not options.tls_verify:
                argv.append(f"{prefix}tls-verify=false")
            if options.authfile:
                argv += [f"{prefix}authfile", options.authfile]
    return argv


def copy(src: str, dest: str, options: CopyOptions = CopyOptions(), *, operation: str,
         progress: ProgressCallback | None = None, shared_blobs: Path | None = None,
         shared_source: bool | None = None) -> None:
    """``skopeo copy SRC DEST``; TLS and auth options apply to whichever side is a registry.

    ``shared_blobs``: the blob directory of the side that is an ``oci:`` layout (skopeo's
    ``--{src,dest}-shared-blob-dir``): the destination's when it is one, unless ``shared_source`` says.
    ``progress`` gets skopeo's lines and, every ``POLL_S``, the bytes written to a destination's
    ``shared_blobs``, against the manifest's total when the source is a registry."""
    if shutil.which(SKOPEO) is None:
        raise RuntimeFailure(f"{operation} needs skopeo (Debian: apt-get install skopeo)", operation=operation)
    extra = []
    if shared_source is None:
        shared_source = not dest.startswith(OCI_TRANSPORT)
    if shared_blobs is not None:
        extra = [f"--{'src' if shared_source else 'dest'}-shared-blob-dir", str(shared_blobs)]
    if progress is None:
        proc = subprocess.run([*_argv("copy", src, dest, options), *extra, "--quiet", src, dest],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=COPY_TIMEOUT_S,
                              preexec_fn=staging.die_with_parent)
        failure = proc.stderr if proc.returncode != 0 else None
    else:
        failure = _copy_reporting([*_argv("copy", src, dest, options), *extra, src, dest],
                                  src, options, progress, None if shared_source else shared_blobs)
    if failure is not None:
        raise RuntimeFailure(f"{operation} {src.removeprefix(DOCKER_TRANSPORT)}: {_reason(failure)}",
                             operation=operation)


def _copy_reporting(argv: list[str], src: str, options: CopyOptions, progress: ProgressCallback,
                    written: Path | None) -> str | None:
    """The copy with its lines and bytes reported; None when it succeeded, else skopeo's stderr."""
    total = _manifest_total(src, options) if src.startswith(DOCKER_TRANSPORT) else None
    already = _bytes_under(written) if written is not None else 0  # blobs other images brought
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=staging.die_with_parent)  # noqa: PLW1509 - one prctl, no lock
    errors: list[str] = []
    finished = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        errors.append(proc.stderr.read())

    def poll() -> None:
        last = -1
        while not finished.wait(POLL_S):
            done = _bytes_under(written) - already if written is not None else 0
            if done != last:
                last = done
                progress(Progress(Phase.BYTES, done=done, total=total))

    threads = [threading.Thread(target=drain, daemon=True), threading.Thread(target=poll, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip():
                progress(Progress(Phase.STEP, line.strip()))
        proc.wait(timeout=COPY_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        finished.set()
        for thread in threads:
            thread.join()
    if proc.returncode == 0 and written is not None:
        progress(Progress(Phase.BYTES, done=_bytes_under(written) - already, total=total))
    return None if proc.returncode == 0 else "".join(errors)


def list_tags(repository: str, options: CopyOptions = CopyOptions(), *, operation: str) -> list[str]:
    """``skopeo list-tags``: the tags a registry holds for ``repository`` (``[docker://]host/name``)."""
    src = docker_reference(repository)
    if shutil.which(SKOPEO) is None:
        raise RuntimeFailure(f"{operation} needs skopeo (Debian: apt-get install skopeo)", operation=operation)
    proc = subprocess.run([*_argv("list-tags", src, None, options), src], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=COPY_TIMEOUT_S)
    try:
        if proc.returncode == 0:
            return [str(tag) for tag in json.loads(proc.stdout)["Tags"] or []]
    except (ValueError, KeyError, TypeError):
        pass
    raise RuntimeFailure(f"{operation} {repository}: {_reason(proc.stderr or proc.stdout)}", operation=operation)


def _manifest_total(src: str, options: CopyOptions) -> int | None:
    """The bytes a registry image's manifest lists (config and layers); None for an index or a failure."""
    proc = subprocess.run([*_argv("inspect", src, None, options), "--raw", src], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=COPY_TIMEOUT_S)
    try:
        manifest = json.loads(proc.stdout)
        return int(manifest["config"]["size"]) + sum(int(layer["size"]) for layer in manifest["layers"])
    except (ValueError, KeyError, TypeError):
        return None


def _bytes_under(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue  # a temporary file renamed meanwhile
    return total


def _reason(stderr: str) -> str:
    """skopeo's reasons without logrus' time and level fields."""
    messages = []
    for match in _LOGRUS_MESSAGE.finditer(stderr):
        try:
            messages.append(json.loads(f'"{match.group(1)}"'))
        except ValueError:
            messages.append(match.group(1))
    return "; ".join(messages) if messages else tool_reason(stderr, "skopeo failed")
