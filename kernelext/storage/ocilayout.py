"""Reading an OCI image layout (what ``skopeo copy ... oci:DIR`` writes): the manifest, config and layers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelext.errors import ImageFormatError

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
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
