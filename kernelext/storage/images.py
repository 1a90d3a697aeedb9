"""Images: read-only root filesystems that containers use as their lower layer.

The built-in ``busybox`` image is assembled on first use from the host's
statically linked busybox, so kernelext works offline on a fresh machine.
Other images come from rootfs tarballs (``image import``, like ``podman
import``), or are layered OCI images brought by skopeo (``pull``, ``image
load``): their layers are unpacked once under ``<root>/layers`` and shared
(:mod:`kernelext.storage.layers`), and the layout skopeo wrote is kept in the
image's directory for ``image save``.
"""

from __future__ import annotations

import datetime
import enum
import os
import shutil
import sqlite3
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelext.config import StoreOptions
from kernelext.errors import (
    ImageFormatError,
    ImageInUseError,
    InvalidArgumentError,
    NameInUseError,
    NoSuchImageError,
    PermissionRequiredError,
    RuntimeFailure,
    tool_reason,
)
from kernelext.rootless import Namespace
from kernelext.storage import layers, skopeo
from kernelext.storage.fdtree import tree_size
from kernelext.storage.ocilayout import read_layout, write_flat_layout
from kernelext.store.db import Database

BUILTIN_BUSYBOX = "busybox"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
#: Bump when the built-in image's layout changes, so a new ID is derived.
BUSYBOX_LAYOUT_VERSION = "1"
_PT_INTERP = 3
DEFAULT_TAG = ":latest"
#: Where a layered image keeps the OCI layout it came in (for ``image save``), inside its directory.
LAYOUT_DIR = "oci"
LAYERS_DIR = "layers"
#: A name kept in an oci-archive's index (``org.opencontainers.image.ref.name``).
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
#: ``image save --format`` values: skopeo's transport names.
SAVE_FORMATS = ("oci-archive", "docker-archive")

_PASSWD = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n" \
          "nobody:x:65534:65534:nobody:/home:/bin/false\n"
_GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n"


class PullPolicy(enum.Enum):
    """podman's ``--pull`` values for run and create."""

    ALWAYS = "always"
    MISSING = "missing"
    NEVER = "never"
    NEWER = "newer"

    @classmethod
    def parse(cls, text: str) -> PullPolicy:
        try:
            return cls(text.lower())
        except ValueError:
            raise InvalidArgumentError(f'unsupported pull policy "{text}"') from None


@dataclass
class ImageConfig:
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    workdir: str = "/"
    user: str = ""
    created: float = 0.0
    size: int = 0
    #: A layered image's diff IDs, bottom first (empty: a flat image, its root in ``rootfs``).
    layers: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    exposed_ports: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageConfig:
        return cls(**data)

    @classmethod
    def from_oci(cls, document: dict[str, Any], diff_ids: list[str]) -> ImageConfig:
        """The parts of an OCI image config kernelext uses (missing or null fields are the defaults)."""
        c = document.get("config") or {}
        return cls(cmd=list(c.get("Cmd") or []), entrypoint=list(c.get("Entrypoint") or []),
                   env=list(c.get("Env") or []), workdir=c.get("WorkingDir") or "/", user=c.get("User") or "",
                   layers=list(diff_ids), labels=dict(c.get("Labels") or {}), stop_signal=c.get("StopSignal") or "",
                   exposed_ports=sorted(c.get("ExposedPorts") or {}))


@dataclass
class Image:
    id: str
    name: str
    rootfs: Path
    config: ImageConfig
    layers_dir: Path

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def lowers(self) -> list[Path]:
        """The directories a container's root is made of, top first."""
        if not self.config.layers:
            return [self.rootfs]
        return [layers.layer_path(self.layers_dir, d) for d in reversed(self.config.layers)]

    def inspect(self) -> dict[str, Any]:
        """podman's ``image inspect`` document (the fields kernelext records)."""
        c = self.config
        config: dict[str, Any] = {"Env": c.env, "Cmd": c.cmd, "WorkingDir": c.workdir, "Labels": c.labels}
        for key, value in (("Entrypoint", c.entrypoint), ("User", c.user), ("StopSignal", c.stop_signal),
                           ("ExposedPorts", {port: {} for port in c.exposed_ports})):
            if value:
                config[key] = value
        created = datetime.datetime.fromtimestamp(c.created, datetime.UTC).isoformat()
        return {"Id": self.id, "RepoTags": [self.name if ":" in self.name.rsplit("/", 1)[-1]
                                            else self.name + DEFAULT_TAG] if self.name != self.id else [],
                "Created": created, "Config": config, "Os": "linux", "Size": c.size,
                "RootFS": {"Type": "layers", "Layers": list(c.layers)}}

    @property
    def layout(self) -> Path | None:
        """The OCI layout a pulled or loaded image came in; None for the built-in and imported ones."""
        path = self.rootfs.parent / LAYOUT_DIR
        return path if path.is_dir() else None


def normalize_name(name: str) -> str:
    """``busybox:latest`` and ``localhost/busybox`` name the image ``busybox``."""
    for prefix in ("localhost/", "docker.io/library/"):
        name = name.removeprefix(prefix)
    return name.removesuffix(DEFAULT_TAG)


def find_static_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and _is_static_elf(path):
            return path
    raise NoSuchImageError("the built-in busybox image needs a statically linked busybox on the host "
                           "(Debian: apt-get install busybox-static)")


def _is_static_elf(path: Path) -> bool:
    """True for a 64-bit ELF without a PT_INTERP header (no dynamic loader needed)."""
    with path.open("rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != _PT_INTERP for i in range(phnum))


class ImageStore:
    def __init__(self, opts: StoreOptions, db: Database, namespace: Namespace | None = None) -> None:
        self.namespace = namespace or Namespace()
        self.opts = opts
        self.db = db

    def _image(self, row: tuple[str, str, dict[str, Any]]) -> Image:
        image_id, name, config = row
        return Image(image_id, name, self.opts.image_dir(image_id) / "rootfs", ImageConfig.from_json(config),
                     self.layers_dir)

    @property
    def layers_dir(self) -> Path:
        return self.opts.root / LAYERS_DIR

    def get(self, name_or_id: str) -> Image:
        """Look an image up; the built-in busybox is assembled on first use."""
        name = normalize_name(name_or_id)
        row = self.db.lookup_image(name)
        if row is not None:
            return self._image(row)
        if name == BUILTIN_BUSYBOX:
            return self._build_busybox()
        raise NoSuchImageError(f"{name_or_id}: image not known")

    def all(self) -> list[Image]:
        return sorted((self._image(row) for row in self.db.all_images()), key=lambda i: i.config.created)

    def remove(self, name_or_id: str) -> Image:
        image = self.get(name_or_id) if normalize_name(name_or_id) != BUILTIN_BUSYBOX or \
            self.db.lookup_image(BUILTIN_BUSYBOX) else None
        if image is None:
            raise NoSuchImageError(f"{name_or_id}: image not known")
        users = self.db.containers_using_image(image.id)
        if users:
            raise ImageInUseError(f"image {image.name} is in use by {len(users)} container(s): "
                                  f"{', '.join(sorted(users))}",
                                  operation="image rm")
        self.db.remove_image(image.id)
        self.namespace.remove_tree(self.opts.image_dir(image.id))
        if image.config.layers:
            still_used = {d for other in self.all() for d in other.config.layers}
            layers.remove_unused(self.layers_dir, still_used, image.config.layers, self.namespace)
        return image

    def _commit(self, name: str, image_id: str, staging: Path, config: ImageConfig, *, retag: bool = False) -> Image:
        """Move a fully built image into place, then record it: never half an image.

        ``retag``: the name moves to this image (a pull of a tag pushed again); the image that had it is
        left named by its ID, as podman leaves it ``<none>``.
        """
        final = self.opts.image_dir(image_id)
        config.created = time.time()
        roots = [layers.layer_path(self.layers_dir, d) for d in config.layers] or [staging / "rootfs"]
        config.size = sum(tree_size(root) for root in roots)
        if final.exists():
            self.namespace.remove_tree(staging)
        else:
            os.rename(staging, final)
        holder = self.db.lookup_image(name)
        if retag and holder is not None and holder[0] != image_id and holder[1] == name:
            self.db.rename_image(holder[0], holder[0])
        try:
            self.db.add_image(image_id, name, config.__dict__)
        except sqlite3.IntegrityError:
            if self.db.lookup_image(image_id) is not None:
                return self.get(image_id)  # already here (one name per image: it keeps the one it has)
            self.namespace.remove_tree(final)  # recorded nowhere: not left behind
            raise NameInUseError(f"image name {name!r} is already in use", operation="image import") from None
        return self.get(image_id)

    def _staging(self) -> Path:
        import tempfile

        parent = self.opts.root / "images"
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
        (staging / "rootfs").mkdir()
        return staging

    def _build_busybox(self) -> Image:
        import hashlib  # only when building: keeps the CLI's start-up lean

        binary = find_static_busybox()
        digest = hashlib.sha256()
        with binary.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(BUSYBOX_LAYOUT_VERSION.encode())
        image_id = digest.hexdigest()
        staging = self._staging()
        try:
            root = staging / "rootfs"
            for d in ("bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr/bin", "usr/sbin",
                      "var/tmp", "run", "srv"):
                (root / d).mkdir(parents=True, exist_ok=True)
            os.chmod(root / "tmp", 0o1777)
            os.chmod(root / "var/tmp", 0o1777)
            os.chmod(root / "root", 0o700)
            shutil.copy2(binary, root / "bin" / "busybox")
            applets = subprocess.run([str(binary), "--list-full"], capture_output=True, text=True, check=True)
            for applet in applets.stdout.split():
                link = root / applet
                if applet.endswith("/busybox") or link.exists():
                    continue
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.relpath(root / "bin" / "busybox", link.parent), link)
            (root / "etc/passwd").write_text(_PASSWD)
            (root / "etc/group").write_text(_GROUP)
            (root / "etc/hostname").write_text("")
            (root / "etc/hosts").write_text("")
            (root / "etc/resolv.conf").write_text("")
        except BaseException:
            self.namespace.remove_tree(staging)
            raise
        return self._commit(BUILTIN_BUSYBOX, image_id, staging, ImageConfig(cmd=["sh"]))

    def import_tarball(self, tarball: Path, name: str, *, cmd: list[str] | None = None) -> Image:
        """``podman import``: a rootfs tarball (plain or compressed) becomes an image."""
        if not tarball.is_file():
            raise InvalidArgumentError(f"{tarball}: no such file", operation="image import")
        import hashlib

        name = normalize_name(name)
        digest = hashlib.sha256()
        with tarball.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        staging = self._staging()
        try:
            # Owners kept where the namespace has them: as root, and rootless with subordinate IDs
            # (extracted inside the namespace, whose root may chown to them); else all the user's.
            keep_owners = self.namespace.keeps_owners
            argv = ["tar", "--extract", "--numeric-owner", "--same-permissions",
                    "--same-owner" if keep_owners else "--no-same-owner", "-f", str(tarball.absolute()),
                    "-C", str(staging / "rootfs")]
            proc = subprocess.run(self.namespace.command(argv) if keep_owners else argv,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeFailure(f"importing {tarball}: {tool_reason(proc.stderr, 'tar failed')}",
                                     operation="image import")
        except BaseException:
            self.namespace.remove_tree(staging)
            raise
        return self._commit(name, digest.hexdigest(), staging, ImageConfig(cmd=cmd or []))

    # ------------------------------------------------------------- OCI images
    def _refuse_rootless(self, operation: str) -> None:
        if self.namespace.rootless:
            # A layer's owners need the store's ID mapping, which extraction does not apply yet.
            raise PermissionRequiredError(f"{operation}: layered images need root for now", operation=operation)

    def pull(self, ref: str, options: skopeo.CopyOptions = skopeo.CopyOptions()) -> Image:  # noqa: B008 - frozen
        """``podman pull``: the image ``ref`` (``[docker://]host/name[:tag]``) from its registry."""
        self._refuse_rootless("pull")
        name = normalize_name(ref.removeprefix(skopeo.DOCKER_TRANSPORT))
        if not name:
            raise InvalidArgumentError("pull needs an image reference")
        return self._bring(skopeo.docker_reference(ref), name, options, operation="pull")

    def load(self, archive: Path) -> Image:
        """``podman load``: a docker-archive or oci-archive file (compressed or not)."""
        self._refuse_rootless("load")
        if not archive.is_file():
            raise InvalidArgumentError(f"{archive}: no such file", operation="load")
        transport, name = _archive_kind(archive)
        return self._bring(f"{transport}:{archive.absolute()}", name, skopeo.CopyOptions(), operation="load")

    def _bring(self, source: str, name: str | None, options: skopeo.CopyOptions, *, operation: str) -> Image:
        """Copy ``source`` into a layout in a staging directory with skopeo, then unpack its layers."""
        staging = self._staging()
        try:
            layout = staging / LAYOUT_DIR
            skopeo.copy(source, f"oci:{layout}", options, operation=operation)
            found = read_layout(layout)
            for blob, diff_id in zip(found.layers, found.diff_ids):
                layers.unpack(blob, diff_id, self.layers_dir, self.namespace)
            config = ImageConfig.from_oci(found.config, found.diff_ids)
        except BaseException:
            self.namespace.remove_tree(staging)
            raise
        return self._commit(normalize_name(name) if name else found.config_digest, found.config_digest, staging,
                            config, retag=True)

    def save(self, name_or_id: str, output: Path, fmt: str = "oci-archive") -> Image:
        """``podman save``: the image as an archive skopeo writes (``oci-archive`` or ``docker-archive``)."""
        if fmt not in SAVE_FORMATS:
            raise InvalidArgumentError(f"unsupported format {fmt!r}: use {' or '.join(SAVE_FORMATS)}",
                                       operation="save")
        image = self.get(name_or_id)
        tagged = image.name if ":" in image.name.rsplit("/", 1)[-1] else image.name + DEFAULT_TAG
        output.unlink(missing_ok=True)  # skopeo refuses to overwrite an archive
        if image.layout is not None:
            skopeo.copy(f"oci:{image.layout}", f"{fmt}:{output.absolute()}:{tagged}", operation="save")
            return image
        staging = self._staging()
        try:  # a flat image: written as a one-layer layout first
            c = image.config
            config = {"Cmd": c.cmd or None, "Entrypoint": c.entrypoint or None, "Env": c.env or None,
                      "WorkingDir": c.workdir, "User": c.user}
            write_flat_layout(image.rootfs, {k: v for k, v in config.items() if v}, staging / LAYOUT_DIR,
                              self.namespace.command(["tar"]))
            skopeo.copy(f"oci:{staging / LAYOUT_DIR}", f"{fmt}:{output.absolute()}:{tagged}", operation="save")
        finally:
            self.namespace.remove_tree(staging)
        return image


def _archive_kind(archive: Path) -> tuple[str, str | None]:
    """The skopeo transport for an image archive, and the name it records (None: none)."""
    import json
    import tarfile

    try:
        with tarfile.open(archive, "r:*") as tar:
            names = {m.name.removeprefix("./"): m for m in tar.getmembers()}
            if "oci-layout" in names and "index.json" in names:
                index = json.load(tar.extractfile(names["index.json"]))  # type: ignore[arg-type]
                annotations = (index.get("manifests") or [{}])[0].get("annotations") or {}
                return "oci-archive", annotations.get(REF_NAME_ANNOTATION)
            if "manifest.json" in names:
                manifest = json.load(tar.extractfile(names["manifest.json"]))  # type: ignore[arg-type]
                tags = (manifest or [{}])[0].get("RepoTags") or []
                return "docker-archive", tags[0] if tags else None
    except tarfile.TarError:
        raise ImageFormatError(f"{archive}: not a (compressed) tar archive", operation="load") from None
    except (OSError, ValueError, AttributeError, IndexError) as exc:
        raise ImageFormatError(f"{archive}: not an image archive: {exc}", operation="load") from None
    raise ImageFormatError(f"{archive}: neither a docker-archive nor an oci-archive", operation="load")
