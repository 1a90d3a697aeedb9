"""OCI image layouts: reading what ``skopeo copy ... oci:DIR`` writes (manifest, config, layers), and writing
a one-layer layout of a flat image (the built-in busybox, an imported rootfs) for ``image save``."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelext.errors import ImageFormatError, RuntimeFailure, tool_reason

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
#: Limit on a manifest or config read into memory: they are small JSON documents.
MAX_DOCUMENT = 4 << 20


@dataclass(frozen=True)
class LayoutImage:
    """One image of a layout: ``config`` is the OCI config document, ``layers`` the blobs bottom first."""

    config_digest: str
    config: dict[str, Any]
    layers: list[Path]
    diff_ids: list[str]


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise ImageFormatError(f"unsupported digest {digest!r}")
    return layout / "blobs" / algorithm / hexdigest


def _document(layout: Path, digest: str) -> dict[str, Any]:
    path = _blob(layout, digest)
    with path.open("rb") as f:
        data = f.read(MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT:
        raise ImageFormatError(f"{digest}: document too large")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ImageFormatError(f"{digest}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ImageFormatError(f"{digest}: not a JSON object")
    return doc


def read_layout(layout: Path) -> LayoutImage:
    """The single image of a layout skopeo wrote (an index's first manifest)."""
    try:
        index = json.loads((layout / "index.json").read_text())
        manifest = _document(layout, index["manifests"][0]["digest"])
        if manifest.get("mediaType") == MEDIA_INDEX:
            raise ImageFormatError("the image is a multi-platform index: pick one platform")
        config_digest = manifest["config"]["digest"]
        config = _document(layout, config_digest)
        layers = [_blob(layout, layer["digest"]) for layer in manifest["layers"]]
        diff_ids = list(config["rootfs"]["diff_ids"])
    except (OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, ImageFormatError):
            raise
        raise ImageFormatError(f"malformed OCI layout {layout}: {exc!r}") from None
    if len(layers) != len(diff_ids):
        raise ImageFormatError(f"the manifest has {len(layers)} layers, the config {len(diff_ids)} diff IDs")
    return LayoutImage(config_digest.removeprefix("sha256:"), config, layers, diff_ids)


def _put(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_flat_layout(rootfs: Path, config: dict[str, Any], layout: Path, tar_command: list[str]) -> None:
    """``layout`` (a new directory) holding one image: ``rootfs`` as its single uncompressed layer.

    ``tar_command``: how to run tar (inside the store's namespace rootless, where the files' owners are).
    """
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer_file = blobs / "layer.tmp"
    with layer_file.open("wb") as out:
        proc = subprocess.run([*tar_command, "--create", "--numeric-owner", "--xattrs", "-C", str(rootfs), "."],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeFailure(f"archiving {rootfs}: {tool_reason(proc.stderr, 'tar failed')}", operation="save")
    digest = hashlib.sha256()
    with layer_file.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    layer = {"mediaType": MEDIA_LAYER, "digest": f"sha256:{digest.hexdigest()}", "size": layer_file.stat().st_size}
    layer_file.rename(blobs / digest.hexdigest())
    document = {"architecture": _architecture(), "os": "linux", "config": config,
                "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}
    config_blob = {"mediaType": MEDIA_CONFIG, **_put(layout, json.dumps(document).encode())}
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config_blob, "layers": [layer]}
    index = {"schemaVersion": 2, "manifests": [{"mediaType": MEDIA_MANIFEST,
                                                **_put(layout, json.dumps(manifest).encode())}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps(LAYOUT_VERSION))


def _architecture() -> str:
    """The OCI name of this machine's architecture."""
    import platform

    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
