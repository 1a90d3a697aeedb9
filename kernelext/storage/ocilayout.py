"""OCI image layouts: reading what ``skopeo copy ... oci:DIR`` writes (manifest, config, layers), and writing
a one-layer layout of a flat image (the built-in busybox, an imported rootfs) for ``image save``.

A config kernelext writes is serialised as Go's image-spec structs marshal it (field order, empty fields
left out, compact, ``<>&`` escaped, RFC 3339 times in UTC as ``Z``): the containers tools re-serialise a
config when they convert it (a docker-archive to OCI), so only then does its digest, the image's ID,
survive ``save`` and ``load`` in podman's default format.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelext.errors import ImageFormatError, RuntimeFailure, tool_reason
from kernelext.storage import staging

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
#: Limit on a manifest or config read into memory: they are small JSON documents.
MAX_DOCUMENT = 4 << 20
#: Go's image-spec ``Image``, ``ImageConfig`` and ``History`` fields in their marshalling order; the
#: required ones (no ``omitempty``) are kept even when empty.
_IMAGE_FIELDS = ("created", "author", "architecture", "variant", "os", "os.version", "os.features", "config",
                 "rootfs", "history")
_IMAGE_REQUIRED = frozenset({"architecture", "os", "config", "rootfs"})
_CONFIG_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                  "StopSignal", "ArgsEscaped")
_HISTORY_FIELDS = ("created", "created_by", "author", "comment", "empty_layer")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
#: What Go's encoder escapes that Python's does not (with ``ensure_ascii=False``).
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@dataclass(frozen=True)
class LayoutImage:
    """One image of a layout: ``config`` is the OCI config document, ``layers`` the blobs bottom first."""

    config_digest: str
    config: dict[str, Any]
    layers: list[Path]
    diff_ids: list[str]
    #: The manifest's descriptors of ``layers`` (media type, digest, size).
    descriptors: list[dict[str, Any]]
    #: Every blob the image needs: its manifest, config and layers.
    digests: list[str]


def blobs_of(layout: Path, shared: Path | None) -> Path:
    """Where a layout's blobs are: its own ``blobs/``, or the store's shared blob directory (skopeo's
    ``--dest-shared-blob-dir``), which holds them as ``sha256/HEX`` too."""
    own = layout / "blobs"  # skopeo makes it, empty, also when it writes to a shared directory
    return own if (own / "sha256").is_dir() or shared is None else shared


def _blob(blobs: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise ImageFormatError(f"unsupported digest {digest!r}")
    return blobs / algorithm / hexdigest


def _document(blobs: Path, digest: str) -> dict[str, Any]:
    path = _blob(blobs, digest)
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


def manifest_digest(layout: Path) -> str | None:
    """The digest of the layout's (first) manifest, as its index names it; None if the index is unreadable."""
    try:
        return str(json.loads((layout / "index.json").read_text())["manifests"][0]["digest"])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def read_layout(layout: Path, shared: Path | None = None) -> LayoutImage:
    """The single image of a layout skopeo wrote (an index's first manifest); ``shared``: the store's shared
    blob directory, for a layout without blobs of its own."""
    blobs = blobs_of(layout, shared)
    try:
        index = json.loads((layout / "index.json").read_text())
        manifest = _document(blobs, index["manifests"][0]["digest"])
        if manifest.get("mediaType") == MEDIA_INDEX:
            raise ImageFormatError("the image is a multi-platform index: pick one platform")
        config_digest = manifest["config"]["digest"]
        config = _document(blobs, config_digest)
        layers = [_blob(blobs, layer["digest"]) for layer in manifest["layers"]]
        diff_ids = list(config["rootfs"]["diff_ids"])
    except (OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, ImageFormatError):
            raise
        raise ImageFormatError(f"malformed OCI layout {layout}: {exc!r}") from None
    if len(layers) != len(diff_ids):
        raise ImageFormatError(f"the manifest has {len(layers)} layers, the config {len(diff_ids)} diff IDs")
    digests = [index["manifests"][0]["digest"], config_digest, *(layer["digest"] for layer in manifest["layers"])]
    return LayoutImage(config_digest.removeprefix("sha256:"), config, layers, diff_ids, list(manifest["layers"]),
                       digests)


def _put(blobs: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def blob_descriptor(path: Path, media_type: str = MEDIA_LAYER, *, rename_into: Path | None = None) -> dict[str, Any]:
    """A descriptor of a blob file, which is renamed to its digest in ``rename_into`` (default: its own
    directory; the same file system)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    descriptor = {"mediaType": media_type, "digest": f"sha256:{digest.hexdigest()}", "size": path.stat().st_size}
    path.rename((rename_into or path.parent) / digest.hexdigest())
    return descriptor


def tar_layer(rootfs: Path, blobs: Path, tar_command: list[str]) -> dict[str, Any]:
    """``rootfs`` archived as one uncompressed layer blob in ``blobs``; its descriptor (digest = diff ID)."""
    layer_file = staging.make_file(blobs)  # a shared blob directory: never a fixed name
    with layer_file.open("wb") as out:
        proc = subprocess.run([*tar_command, "--create", "--numeric-owner", "--xattrs", "-C", str(rootfs), "."],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, text=True,
                              preexec_fn=staging.die_with_parent)
    if proc.returncode != 0:
        raise RuntimeFailure(f"archiving {rootfs}: {tool_reason(proc.stderr, 'tar failed')}", operation="save")
    return blob_descriptor(layer_file)


def _go_time(text: Any) -> Any:
    """A time as Go's RFC3339Nano writes it: the fraction's trailing zeros dropped, UTC as ``Z``."""
    match = _TIME.match(text) if isinstance(text, str) else None
    if match is None:
        return text
    fraction = (match[2] or "").rstrip("0")
    return match[1] + (f".{fraction}" if fraction else "") + ("Z" if match[3] in ("Z", "+00:00", "-00:00") else match[3])


def _go_struct(data: dict[str, Any], fields: tuple[str, ...], required: frozenset[str] = frozenset()) -> dict[str, Any]:
    ordered = {key: data[key] for key in fields if key in data and (data[key] or key in required)}
    ordered.update({key: data[key] for key in sorted(data) if key not in fields})  # not in the spec: after
    return ordered


def go_config_json(document: dict[str, Any]) -> bytes:
    """``document`` (an OCI image config) as Go's encoder writes the image-spec struct."""
    image = _go_struct({**document, "created": _go_time(document.get("created"))}, _IMAGE_FIELDS, _IMAGE_REQUIRED)
    config = _go_struct(dict(image.get("config") or {}), _CONFIG_FIELDS)
    image["config"] = {key: dict(sorted(value.items())) if isinstance(value, dict) else value  # Go sorts a map
                       for key, value in config.items()}
    if "history" in image:
        image["history"] = [_go_struct({**entry, "created": _go_time(entry.get("created"))}, _HISTORY_FIELDS)
                            for entry in image["history"]]
    text = json.dumps(image, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text.encode()


def write_layout(layout: Path, document: dict[str, Any], layers: list[dict[str, Any]],
                 blobs: Path | None = None) -> str:
    """The index, manifest and config of one image in ``layout`` (its layer blobs already in ``blobs``, by
    default its own ``blobs/``); the config digest, which is the image's ID."""
    blobs = blobs or layout / "blobs"
    layout.mkdir(parents=True, exist_ok=True)
    config_blob = {"mediaType": MEDIA_CONFIG, **_put(blobs, go_config_json(document))}
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config_blob, "layers": layers}
    index = {"schemaVersion": 2, "manifests": [{"mediaType": MEDIA_MANIFEST,
                                                **_put(blobs, json.dumps(manifest).encode())}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps(LAYOUT_VERSION))
    return str(config_blob["digest"]).removeprefix("sha256:")


def write_flat_layout(rootfs: Path, config: dict[str, Any], layout: Path, tar_command: list[str]) -> None:
    """``layout`` (a new directory) holding one image: ``rootfs`` as its single uncompressed layer.

    ``tar_command``: how to run tar (inside the store's namespace rootless, where the files' owners are).
    """
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer = tar_layer(rootfs, blobs, tar_command)
    write_layout(layout, {"architecture": architecture(), "os": "linux", "config": config,
                          "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}, [layer])


def architecture() -> str:
    """The OCI name of this machine's architecture."""
    import platform

    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
