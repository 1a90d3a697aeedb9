"""A small OCI image layout writer for the tests: images built here, pushed with skopeo."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
#: Fixed mtimes and gzip headers: the same layer built twice has the same digest (shared base layers).
MTIME = 1_700_000_000


@dataclass
class Entry:
    """One tar member: ``kind`` is tarfile's type (REGTYPE, DIRTYPE, SYMTYPE, LNKTYPE)."""

    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def file(name: str, data: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0,
         xattrs: dict[str, bytes] | None = None) -> Entry:
    return Entry(name, data=data.encode() if isinstance(data, str) else data, mode=mode, uid=uid, gid=gid,
                 xattrs=xattrs or {})


def directory(name: str, mode: int = 0o755) -> Entry:
    return Entry(name, tarfile.DIRTYPE, mode=mode)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.SYMTYPE, link=target, mode=0o777)


def hardlink(name: str, target: str) -> Entry:
    return Entry(name, tarfile.LNKTYPE, link=target)


def layer_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.mode, info.uid, info.gid, info.mtime = e.kind, e.mode, e.uid, e.gid, MTIME
            info.linkname = e.link
            # As GNU tar and containers/storage write them; binary values survive as surrogates.
            info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in e.xattrs.items()}
            if e.kind == tarfile.REGTYPE:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


@dataclass
class Layout:
    """An OCI layout directory: ``add_image`` writes blobs and a tagged manifest."""

    path: Path
    tags: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / digest).write_bytes(data)
        return f"sha256:{digest}"

    def add_image(self, tag: str, layers: list[list[Entry]], config: dict[str, Any] | None = None) -> str:
        """Write an image; returns its config digest (kernelext's image ID)."""
        descriptors, diff_ids = [], []
        for entries in layers:
            raw = layer_tar(entries)
            diff_ids.append(f"sha256:{hashlib.sha256(raw).hexdigest()}")
            compressed = gzip.compress(raw, mtime=0)
            descriptors.append({"mediaType": MEDIA_LAYER_GZIP, "digest": self.blob(compressed),
                                "size": len(compressed)})
        doc = {"architecture": "amd64", "os": "linux", "config": config or {},
               "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        config_bytes = json.dumps(doc).encode()
        config_digest = self.blob(config_bytes)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                               "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest,
                                          "size": len(config_bytes)},
                               "layers": descriptors}).encode()
        self.tags.append({"mediaType": MEDIA_MANIFEST, "digest": self.blob(manifest), "size": len(manifest),
                          "annotations": {"org.opencontainers.image.ref.name": tag}})
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": self.tags}))
        return config_digest.removeprefix("sha256:")


def push(layout: Layout, tag: str, dest: str) -> None:
    """``skopeo copy`` of a tag of the layout to a plain-HTTP registry reference (host:port/name:tag)."""
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout.path}:{tag}",
                    f"docker://{dest}"], check=True, capture_output=True, timeout=120)
