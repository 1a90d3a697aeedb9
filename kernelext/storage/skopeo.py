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
from dataclasses import dataclass

from kernelext.errors import RuntimeFailure, tool_reason

SKOPEO = "skopeo"
DOCKER_TRANSPORT = "docker://"
#: The registries.conf podman reads instead of /etc/containers/registries.conf (e.g. a plain-HTTP registry).
ENV_REGISTRIES_CONF = "CONTAINERS_REGISTRIES_CONF"
#: A pull of a large image over a slow link may take long; a hung skopeo must not hang kernelext forever.
COPY_TIMEOUT_S = 3600
#: skopeo logs its failure as logrus does: time="..." level=fatal msg="REASON" (REASON quoted as Go's %q).
_LOGRUS_MESSAGE = re.compile(r'level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class CopyOptions:
    """``tls_verify``: False for a plain-HTTP or self-signed registry (``--tls-verify=false``)."""

    tls_verify: bool = True
    authfile: str | None = None


def docker_reference(ref: str) -> str:
    """``docker://REF`` for a reference given with or without the transport."""
    return ref if ref.startswith(DOCKER_TRANSPORT) else DOCKER_TRANSPORT + ref


def copy(src: str, dest: str, options: CopyOptions = CopyOptions(), *, operation: str) -> None:
    """``skopeo copy SRC DEST``; TLS and auth options apply to whichever side is a registry."""
    if shutil.which(SKOPEO) is None:
        raise RuntimeFailure(f"{operation} needs skopeo (Debian: apt-get install skopeo)", operation=operation)
    argv = [SKOPEO, "copy", "--quiet"]
    if os.environ.get(ENV_REGISTRIES_CONF):  # podman's variable; skopeo reads it only as a flag
        argv.insert(1, f"--registries-conf={os.environ[ENV_REGISTRIES_CONF]}")
    for side, ref in (("src", src), ("dest", dest)):
        if ref.startswith(DOCKER_TRANSPORT):
            if not options.tls_verify:
                argv.append(f"--{side}-tls-verify=false")
            if options.authfile:
                argv += [f"--{side}-authfile", options.authfile]
    proc = subprocess.run([*argv, src, dest], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=COPY_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeFailure(f"{operation} {src.removeprefix(DOCKER_TRANSPORT)}: {_reason(proc.stderr)}",
                             operation=operation)


def _reason(stderr: str) -> str:
    """skopeo's reasons without logrus' time and level fields."""
    messages = []
    for match in _LOGRUS_MESSAGE.finditer(stderr):
        try:
            messages.append(json.loads(f'"{match.group(1)}"'))
        except ValueError:
            messages.append(match.group(1))
    return "; ".join(messages) if messages else tool_reason(stderr, "skopeo failed")
