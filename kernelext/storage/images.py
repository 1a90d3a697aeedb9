"""Images: read-only root filesystems that containers use as their lower layer.

The built-in ``busybox`` image is made on first use from the host's statically
linked busybox (:mod:`kernelext.storage.busybox`), so kernelext works offline
on a fresh machine; it is a one-layer OCI image like a pulled one. Other
images are layered OCI images brought by skopeo (``pull``, ``image load``) or
made by ``commit``: their layers are unpacked once under ``<root>/layers`` and
shared (:mod:`kernelext.storage.layers`), and the layout is kept in the
image's directory for ``image save``. Rootfs tarballs (``image import``, like
``podman import``) and the built-in image of stores made before it was
layered are flat: one directory, ``rootfs``.
"""

from __future__ import annotations

import datetime
import enum
import errno
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelext import faults
from kernelext.config import StoreConfig
from kernelext.errors import (
    ImageFormatError,
    ImageInUseError,
    InvalidArgumentError,
    NoSuchImageError,
    PermissionRequiredError,
    RuntimeFailure,
    tool_reason,
)
from kernelext.files.fdtree import tree_size
from kernelext.rootless import Namespace
from kernelext.statedb.db import Database
from kernelext.storage import busybox, layers, skopeo, staging
from kernelext.storage.ocilayout import (
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    architecture,
    blob_descriptor,
    blobs_of,
    read_layout,
    tar_layer,
    write_flat_layout,
    write_layout,
)
from kernelext.storage.progress import Phase, Progress, ProgressCallback
from kernelext.storage.trash import Trash

BUILTIN_BUSYBOX = "busybox"
#: The shortest ID prefix that names an image (podman accepts any unambiguous prefix; 3 keeps names apart).
MIN_ID_PREFIX = 3
HEX = frozenset("0123456789abcdef")
DEFAULT_TAG = ":latest"
SHA256_PREFIX = "sha256:"
#: Where a layered image keeps the OCI layout it came in (for ``image save``), inside its directory.
LAYOUT_DIR = "oci"
LAYERS_DIR = "layers"
BLOBS_DIR = "blobs"
BLOBS_LOCK = "blobs.lock"
#: A name kept in an oci-archive's index (``org.opencontainers.image.ref.name``).
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
#: podman's words for an archive ``load`` cannot read (its reasons follow).
PAYLOAD_UNKNOWN = "payload does not match any of the supported image formats"
#: ``image save --format`` values: skopeo's transport names.
SAVE_FORMATS = ("oci-archive", "docker-archive")
#: Bytes per read when a saved archive is copied into a device or FIFO.
SAVE_COPY_BUFFER = 1 << 20
#: Transports of images in files on this host, as ``pull``, ``run``, ``create`` and ``push`` take them
#: (``docker-archive:PATH``, ``dir:PATH``...): archives name their image, directories do not.
ARCHIVE_TRANSPORTS = ("docker-archive", "oci-archive")
DIRECTORY_TRANSPORTS = ("dir", "oci")


def file_transport(ref: str) -> str | None:
    """The transport of a reference to an image in a file or directory here (``docker-archive``...), else None."""
    transport, sep, _ = ref.partition(":")
    return transport if sep and transport in ARCHIVE_TRANSPORTS + DIRECTORY_TRANSPORTS else None

#: An image reference: [host[:port]/]path[:tag] (the distribution grammar's lowercase path components).
REFERENCE = re.compile(r"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                       r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?")



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
    #: The image's ``Volumes``: anonymous volumes of each container (kernelext.core.mounts).
    volumes: list[str] = field(default_factory=list)
    #: The OCI config's history (``created``, ``created_by``, ``comment``, ``author``, ``empty_layer``).
    history: list[dict[str, Any]] = field(default_factory=list)
    author: str = ""
    #: Bytes on disk of each layer in ``layers`` (measured when the image was stored).
    layer_sizes: list[int] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageConfig:
        return cls(**data)

    def to_oci(self) -> dict[str, Any]:
        """The ``config`` part of an OCI image config for what kernelext records (empty values left out)."""
        config = {"Cmd": self.cmd, "Entrypoint": self.entrypoint, "Env": self.env, "WorkingDir": self.workdir,
                  "User": self.user, "Labels": self.labels, "StopSignal": self.stop_signal,
                  "ExposedPorts": {port: {} for port in self.exposed_ports}}
        return {key: value for key, value in config.items() if value}

    @classmethod
    def from_oci(cls, document: dict[str, Any], diff_ids: list[str]) -> ImageConfig:
        """The parts of an OCI image config kernelext uses (missing or null fields are the defaults)."""
        c = document.get("config") or {}
        return cls(cmd=list(c.get("Cmd") or []), entrypoint=list(c.get("Entrypoint") or []),
                   env=list(c.get("Env") or []), workdir=c.get("WorkingDir") or "/", user=c.get("User") or "",
                   layers=list(diff_ids), labels=dict(c.get("Labels") or {}), stop_signal=c.get("StopSignal") or "",
                   exposed_ports=sorted(c.get("ExposedPorts") or {}), volumes=sorted(c.get("Volumes") or {}),
                   history=[h for h in document.get("history") or [] if isinstance(h, dict)],
                   author=document.get("author") or "", created=parse_time(document.get("created")))


@dataclass(repr=False)
class Image:
    id: str
    #: Its names (normalized: ``busybox``, ``127.0.0.1:5000/app:v2``); none: a dangling image, ``<none>``.
    names: list[str]
    rootfs: Path
    config: ImageConfig
    layers_dir: Path

    def __repr__(self) -> str:
        return f"<Image {self.short_id} {self.repo_tags or ['<none>']} layers={len(self.config.layers) or 1}>"

    @property
    def name(self) -> str:
        """Its first name, or its ID when it has none."""
        return self.names[0] if self.names else self.id

    def name_for(self, reference: str) -> str:
        """The name ``reference`` found this image by (another of its names need not be the first), else its
        first name: what a container made from ``reference`` records (podman's ``ImageName``)."""
        name = normalize_name(reference)
        return name if name in self.names else self.name

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def repo_tags(self) -> list[str]:
        """podman's ``RepoTags``: each name in full (``localhost/busybox:latest``)."""
        return [":".join(repo_tag(name)) for name in self.names]

    @property
    def dangling(self) -> bool:
        return not self.names

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
                           ("ExposedPorts", {port: {} for port in c.exposed_ports}),
                           ("Volumes", {path: {} for path in c.volumes})):
            if value:
                config[key] = value
        created = datetime.datetime.fromtimestamp(c.created, datetime.UTC).isoformat()
        comment = next((step.get("comment") or "" for step in reversed(c.history) if not step.get("empty_layer")),
                       "")
        return {"Id": self.id, "Digest": f"sha256:{self.id}", "RepoTags": self.repo_tags, "RepoDigests": [],
                "Parent": "", "Comment": comment, "Created": created, "Config": config, "Version": "",
                "Author": c.author, "Architecture": architecture(), "Os": "linux", "Size": c.size,
                "VirtualSize": c.size, "RootFS": {"Type": "layers", "Layers": list(c.layers)},
                "Labels": c.labels or None, "Annotations": {}, "ManifestType": MEDIA_MANIFEST, "User": c.user,
                "History": list(c.history), "NamesHistory": list(self.names)}

    @property
    def layout(self) -> Path | None:
        """The OCI layout a pulled or loaded image came in; None for the built-in and imported ones."""
        path = self.rootfs.parent / LAYOUT_DIR
        return path if path.is_dir() else None


@dataclass
class Removal:
    """What ``image rm`` did: the names it untagged, and whether the image itself was deleted."""

    image: Image
    untagged: list[str]
    deleted: bool

    def lines(self) -> list[str]:
        """What podman's ``rmi`` prints for it."""
        return [f"Untagged: {tag}" for tag in self.untagged] + ([f"Deleted: {self.image.id}"] if self.deleted else [])


@dataclass
class HistoryEntry:
    """One line of ``image history``: ``id`` only on the image's own (top) step, podman's ``<missing>`` else."""

    id: str | None
    created: str
    created_by: str
    size: int
    comment: str


def has_label(image: Image, label: str) -> bool:
    """Whether ``image`` has the label ``KEY`` (any value) or ``KEY=VALUE``."""
    key, has_value, value = label.partition("=")
    return key in image.config.labels and (not has_value or image.config.labels[key] == value)


def parse_time(text: object) -> float:
    """An OCI ``created`` time (RFC 3339, maybe with nanoseconds) as a timestamp; 0 when absent or malformed."""
    if not isinstance(text, str):
        return 0.0
    match = re.fullmatch(r"(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text.strip())
    if match is None:
        return 0.0
    head, fraction, zone = match.groups()
    try:
        moment = datetime.datetime.fromisoformat(head + (fraction or "")[:7] + zone.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(moment.timestamp(), 0.0)


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


def normalize_name(name: str) -> str:
    """``busybox:latest`` and ``localhost/busybox`` name the image ``busybox``."""
    for prefix in ("localhost/", "docker.io/library/"):
        name = name.removeprefix(prefix)
    return name.removesuffix(DEFAULT_TAG)


def repo_tag(name: str) -> tuple[str, str]:
    """A stored name as podman shows it: (``localhost/busybox``, ``latest``); a name without a registry is
    local (podman's ``localhost/``)."""
    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "latest")
    first = repository.split("/", 1)[0]
    if "/" not in repository or not ("." in first or ":" in first or first == "localhost"):
        repository = f"localhost/{repository}"
    return repository, tag


def valid_name(name: str) -> bool:
    """A reference podman accepts as an image name: lowercase path components, an optional tag."""
    return REFERENCE.fullmatch(name) is not None and "@" not in name


def check_name(name: str, operation: str) -> str:
    """``name`` normalized, or podman's refusal of a malformed reference."""
    if not valid_name(name):
        reason = "repository name must be lowercase" if valid_name(name.lower()) else "invalid reference format"
        raise InvalidArgumentError(f'normalizing name "{name}": {reason}', operation=operation)
    return normalize_name(name)


class ImageStore:
    def __init__(self, opts: StoreConfig, db: Database, namespace: Namespace | None = None,
                 trash: Trash | None = None) -> None:
        self.namespace = namespace or Namespace()
        self.opts = opts
        self.db = db
        self._trash = trash

    def _image(self, row: tuple[str, list[str], dict[str, Any]]) -> Image:
        image_id, names, config = row
        return Image(image_id, names, self.opts.image_dir(image_id) / "rootfs", ImageConfig.from_json(config),
                     self.layers_dir)

    @property
    def layers_dir(self) -> Path:
        return self.opts.root / LAYERS_DIR

    def _resolve(self, name_or_id: str) -> str | None:
        """The ID a name, a full ID or an unambiguous ID prefix (3+ characters) stands for."""
        name = normalize_name(name_or_id)
        image_id = self.db.image_by_name(name)
        if image_id is not None:
            return image_id
        ref = name_or_id.removeprefix("sha256:")
        if len(ref) < MIN_ID_PREFIX or any(c not in HEX for c in ref):
            return None
        matches = self.db.images_by_id_prefix(ref)
        if len(matches) > 1:
            raise NoSuchImageError(f'{name_or_id}: image ID prefix is ambiguous: it matches {len(matches)} images')
        return matches[0] if matches else None

    def get(self, name_or_id: str) -> Image:
        """Look an image up; the built-in busybox is assembled on first use."""
        image_id = self._resolve(name_or_id)
        row = self.db.image_row(image_id) if image_id else None
        if row is not None:
            return self._image(row)
        if normalize_name(name_or_id) == BUILTIN_BUSYBOX:
            return self._build_busybox()
        raise NoSuchImageError(f"{name_or_id}: image not known")

    def __call__(self) -> list[Image]:
        """``rt.images()``: every image, oldest first (``rt.images`` itself is the store). As ``ps -a`` does
        for containers, listing first cleans up after image operations that died."""
        self.recover()
        return self.all()

    def exists(self, name_or_id: str) -> bool:
        """``image exists``: recorded in the store (the built-in busybox only once assembled)."""
        try:
            return self._resolve(name_or_id) is not None
        except NoSuchImageError:
            return False

    def all(self) -> list[Image]:
        return sorted((self._image(row) for row in self.db.all_images()), key=lambda i: i.config.created)

    def tag(self, name_or_id: str, *new_names: str) -> Image:
        """``image tag``: more names for the image (a name another image had moves here)."""
        names = [check_name(n, "tag") for n in new_names]
        image = self.get(name_or_id)
        for name in names:
            self.db.tag_image(image.id, name)
        return self.get(image.id)

    def untag(self, name_or_id: str, *names: str) -> Image:
        """``image untag``: the given names taken off the image (all of them when none is given)."""
        image = self.get(name_or_id)
        for name in [normalize_name(n) for n in names] or image.names:
            if not self.db.untag_image(image.id, name):
                raise NoSuchImageError(f"{':'.join(repo_tag(name))}: tag not known", operation="untag")
        return self.get(image.id)

    def remove(self, name_or_id: str, *, force: bool = False) -> Removal:
        """``image rm``: a name of an image with several is untagged; otherwise the image and its unused layers go.

        The caller removes the containers that use it first when ``force`` (podman's ``rmi -f``)."""
        image_id = self._resolve(name_or_id)  # never assembles the built-in image only to remove it
        if image_id is None:
            raise NoSuchImageError(f"{name_or_id}: image not known", operation="image rm")
        image = self.get(image_id)
        by_name = normalize_name(name_or_id) in image.names
        if by_name and len(image.names) > 1:
            self.db.untag_image(image.id, normalize_name(name_or_id))
            return Removal(image, [":".join(repo_tag(normalize_name(name_or_id)))], deleted=False)
        if not by_name and len(image.names) > 1 and not force:
            raise InvalidArgumentError(f'unable to delete image "{image.id}" by ID with more than one tag '
                                       f"([{' '.join(image.repo_tags)}]): please force removal", operation="image rm")
        users = self.db.containers_using_image(image.id)
        if users:
            raise ImageInUseError(f"image used by {min(users)}: image is in use by a container: consider "
                                  f"listing external containers and force-removing image", operation="image rm")
        marker = staging.make_dir(self.opts.root / "images")  # killed before the end: recover() finishes
        try:
            self.db.remove_image(image.id)
            faults.point("image:unrecorded")
            self.namespace.remove_tree(self.opts.image_dir(image.id))
            if image.config.layers:
                still_used = {d for other in self.all() for d in other.config.layers}
                layers.remove_unused(self.layers_dir, still_used, image.config.layers, self.namespace)
                self._collect_blobs()
        except BaseException:
            self._abandon(marker)
            raise
        os.rmdir(marker)
        return Removal(image, image.repo_tags, deleted=True)

    def users(self, image: Image) -> list[str]:
        """The IDs of the containers made from ``image``."""
        return self.db.containers_using_image(image.id)

    def prune_candidates(self, *, all_: bool = False, until: float | None = None, labels: Sequence[str] = (),
                         not_labels: Sequence[str] = ()) -> list[Image]:
        """``image prune``: dangling images (every image with ``all_``) that no container uses, newest first;
        podman's ``--filter``s: created before ``until``, with each of ``labels`` and none of ``not_labels``
        (``KEY`` or ``KEY=VALUE``)."""
        return [image for image in reversed(self.all())
                if (all_ or image.dangling) and (until is None or image.config.created < until)
                and all(has_label(image, label) for label in labels)
                and not any(has_label(image, label) for label in not_labels)
                and not self.db.containers_using_image(image.id)]

    def history(self, name_or_id: str) -> list[HistoryEntry]:
        """``image history``: the image's steps, newest first; each step that made a layer shows its size."""
        image = self.get(name_or_id)
        c = image.config
        sizes = c.layer_sizes if len(c.layer_sizes) == len(c.layers) else \
            [tree_size(layers.layer_path(self.layers_dir, d)) for d in c.layers]
        steps = list(c.history) or [{"created": _iso(c.created), "created_by": "", "comment": ""}]
        # An image whose history names fewer layers than it has (many tools write none): a step each for the rest.
        missing = len(c.layers) - sum(1 for step in steps if not step.get("empty_layer"))
        steps = [{"created": _iso(c.created)} for _ in range(missing)] + steps
        entries, layer = [], 0
        for step in steps:
            size = 0
            if not step.get("empty_layer"):
                size = sizes[layer] if layer < len(sizes) else (c.size if not c.layers else 0)
                layer += 1
            entries.append(HistoryEntry(id=None, created=step.get("created") or "",
                                        created_by=step.get("created_by") or "", size=size,
                                        comment=step.get("comment") or ""))
        entries.reverse()
        entries[0].id = image.id
        return entries

    def _commit(self, names: list[str], image_id: str, staging_dir: Path, config: ImageConfig) -> Image:
        """Move a fully built image into place, then record it: never half an image.

        ``names`` move to this image from any image that had them (a pull of a tag pushed again); the image
        that had them is left without, as podman leaves it ``<none>``. A staging entry of this process stays
        until the row is there: killed before, the next one finds the work unfinished (:meth:`recover`).
        """
        final = self.opts.image_dir(image_id)
        config.created = config.created or time.time()
        roots = [layers.layer_path(self.layers_dir, d) for d in config.layers] or [staging_dir / "rootfs"]
        config.layer_sizes = [tree_size(root) for root in roots] if config.layers else []
        config.size = sum(config.layer_sizes) if config.layers else tree_size(roots[0])
        marker = staging.make_dir(final.parent)  # the staging directory's part once it is in place
        try:
            if final.exists():  # here already (the same image brought again): it gets the names
                self.namespace.remove_tree(staging_dir)
            else:
                os.rename(staging_dir, final)
            faults.point("image:placed")
            try:
                self.db.add_image(image_id, names, config.__dict__)
            except sqlite3.IntegrityError:  # already here: it gets the names
                for name in names:
                    self.db.tag_image(image_id, name)
        except BaseException:
            self._abandon(marker)
            raise
        os.rmdir(marker)
        return self.get(image_id)

    def _staging(self) -> Path:
        directory = staging.make_dir(self.opts.root / "images")
        (directory / "rootfs").mkdir()
        return directory

    def _build_busybox(self) -> Image:
        """The built-in image, made from the host's busybox-static as one layer (docs/architecture.md §11)."""
        binary = busybox.find_static_busybox()
        staging_dir = self._staging()
        try:
            with self._blobs_locked():
                blobs = self.blobs_dir / "sha256"
                blob = staging.make_file(blobs)
                layer_dir = staging.make_dir(self.layers_dir)
                try:
                    with blob.open("wb") as out:
                        layer = busybox.write_layer(binary, layer_dir, out)
                    os.rename(blob, blobs / layer.diff_id.removeprefix(SHA256_PREFIX))
                    final = layers.layer_path(self.layers_dir, layer.diff_id)
                    try:
                        os.rename(layer_dir, final)
                    except OSError as exc:  # another process made it meanwhile: the same files
                        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                            raise
                finally:
                    blob.unlink(missing_ok=True)
                    if layer_dir.exists():
                        self.namespace.remove_tree(layer_dir)
                document = busybox.config_document(binary, layer.diff_id, architecture())
                descriptor = {"mediaType": MEDIA_LAYER, "digest": layer.diff_id, "size": layer.size}
                image_id = write_layout(staging_dir / LAYOUT_DIR, document, [descriptor], self.blobs_dir)
                return self._commit([BUILTIN_BUSYBOX], image_id, staging_dir,
                                    ImageConfig.from_oci(document, [layer.diff_id]))
        except BaseException:
            self._abandon(staging_dir)
            raise

    def import_tarball(self, tarball: Path, name: str | None, *, cmd: list[str] | None = None,
                       labels: dict[str, str] | None = None) -> Image:
        """``podman import``: a rootfs tarball (plain or compressed) becomes an image (with ``labels``); without
        ``name``, a dangling one."""
        if not tarball.is_file():
            raise InvalidArgumentError(f"{tarball}: no such file", operation="image import")
        import hashlib

        digest = hashlib.sha256()
        with tarball.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        # the config is part of what the image is: the same tarball imported with another CMD or labels is
        # another image (its ID), never the first one under a new name
        digest.update(json.dumps({"cmd": cmd or [], "labels": labels or {}}, sort_keys=True).encode())
        staging_dir = self._staging()
        try:
            # Owners kept where the namespace has them: as root, and rootless with subordinate IDs
            # (extracted inside the namespace, whose root may chown to them); else all the user's.
            keep_owners = self.namespace.keeps_owners
            argv = ["tar", "--extract", "--numeric-owner", "--same-permissions",
                    "--same-owner" if keep_owners else "--no-same-owner", "-f", str(tarball.absolute()),
                    "-C", str(staging_dir / "rootfs")]
            proc = subprocess.run(self.namespace.command(argv) if keep_owners else argv,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeFailure(f"importing {tarball}: {tool_reason(proc.stderr, 'tar failed')}",
                                     operation="image import")
        except BaseException:
            self._abandon(staging_dir)
            raise
        return self._commit([normalize_name(name)] if name else [], digest.hexdigest(), staging_dir,
                            ImageConfig(cmd=cmd or [], labels=labels or {}))

    # ------------------------------------------------------------- OCI images
    def _copy_options(self, options: skopeo.CopyOptions | None = None) -> skopeo.CopyOptions:
        """``options`` with, rootless, the store's private runroot as skopeo's runtime directory."""
        from dataclasses import replace

        options = options or skopeo.CopyOptions()
        return replace(options, runtime_dir=str(self.opts.runroot)) if self.namespace.rootless else options

    def _unpack(self, blob: Path, diff_id: str, operation: str) -> None:
        """A layer unpacked once; rootless inside the store's namespace, where its owners and whiteouts exist."""
        if layers.layer_path(self.layers_dir, diff_id).is_dir():
            return
        if self.namespace.direct:
            layers.unpack(blob, diff_id, self.layers_dir, self.namespace)
        else:
            from kernelext.storage.layerworker import unpack_in_namespace

            self.layers_dir.mkdir(parents=True, exist_ok=True)
            unpack_in_namespace(blob, diff_id, self.layers_dir, self.namespace, operation)

    def pull(self, ref: str, options: skopeo.CopyOptions = skopeo.CopyOptions(),  # noqa: B008 - frozen
             progress: ProgressCallback | None = None) -> Image:
        """``podman pull``: the image ``ref`` (``[docker://]host/name[:tag]``) from its registry, or
        (``containers-storage:NAME``) from podman's or buildah's store on this host."""
        if file_transport(ref) is not None:
            return self._pull_file(ref, options, progress)
        if ref.startswith(skopeo.CONTAINERS_STORAGE_TRANSPORT):
            if self.namespace.rootless:
                # A user's podman store is readable only inside podman's own user namespace, not this store's.
                raise PermissionRequiredError("containers-storage: needs root (a rootless podman store can only be "
                                              "read inside podman's user namespace)", operation="pull")
            # "containers-storage:[driver@root+runroot]NAME" picks a store other than the default one.
            rest = ref.removeprefix(skopeo.CONTAINERS_STORAGE_TRANSPORT)
            source, name = ref, normalize_name(rest.split("]", 1)[1] if rest.startswith("[") else rest)
        else:
            source, name = skopeo.docker_reference(ref), normalize_name(ref.removeprefix(skopeo.DOCKER_TRANSPORT))
        if not name:
            raise InvalidArgumentError("pull needs an image reference")
        return self._bring(source, name, options, operation="pull", progress=progress)

    def _pull_file(self, ref: str, options: skopeo.CopyOptions, progress: ProgressCallback | None) -> Image:
        """An image from an archive (named as it records) or a directory (``oci:PATH:NAME`` names it)."""
        transport, _, location = ref.partition(":")
        name: str | None = None
        if transport in ARCHIVE_TRANSPORTS:
            path = Path(location)
            if not path.is_file():
                raise InvalidArgumentError(f"{ref}: no such archive", operation="pull")
            name = _archive_kind(path)[1]
        else:
            location, _, name = location.partition(":") if transport == "oci" else (location, "", "")
            path = Path(location)
            if not path.is_dir():
                raise InvalidArgumentError(f"{ref}: no such directory", operation="pull")
        source = f"{transport}:{path.absolute()}" + (f":{name}" if transport == "oci" and name else "")
        return self._bring(source, name or None, options, operation="pull", progress=progress)

    def pull_all_tags(self, repository: str, options: skopeo.CopyOptions = skopeo.CopyOptions(),  # noqa: B008
                      progress: ProgressCallback | None = None) -> list[Image]:
        """``podman pull --all-tags``: every tagged image of a registry repository (a tag in it is refused)."""
        name = repository.removeprefix(skopeo.DOCKER_TRANSPORT)
        if repository.startswith(skopeo.CONTAINERS_STORAGE_TRANSPORT) or ":" in name.rsplit("/", 1)[-1] \
                or "@" in name:
            raise InvalidArgumentError("tag can't be used with --all-tags/-a", operation="pull")
        tags = skopeo.list_tags(name, self._copy_options(options), operation="pull")
        return [self.pull(f"{name}:{tag}", options, progress) for tag in tags]

    def load(self, archive: Path, progress: ProgressCallback | None = None) -> Image:
        """``podman load``: a docker-archive or oci-archive file (compressed or not)."""
        if not archive.is_file():
            raise InvalidArgumentError(f"{archive}: no such file", operation="load")
        transport, name = _archive_kind(archive)
        return self._bring(f"{transport}:{archive.absolute()}", name, self._copy_options(), operation="load",
                           progress=progress)

    def _bring(self, source: str, name: str | None, options: skopeo.CopyOptions, *, operation: str,
               progress: ProgressCallback | None = None) -> Image:
        """Copy ``source`` into a layout in a staging directory with skopeo, then unpack its layers."""
        staging_dir = self._staging()
        try:
            layout = staging_dir / LAYOUT_DIR
            with self._blobs_locked():
                # Blobs go to the store's shared directory: a layer another image brought is not fetched again.
                skopeo.copy(source, f"oci:{layout}", self._copy_options(options), operation=operation,
                            progress=progress,
                            shared_blobs=self.blobs_dir)
                found = read_layout(layout, self.blobs_dir)
                for index, (blob, diff_id) in enumerate(zip(found.layers, found.diff_ids)):
                    if progress is not None:
                        progress(Progress(Phase.UNPACK, f"Unpacking layer {diff_id}", index, len(found.layers)))
                    self._unpack(blob, diff_id, operation)
                faults.point(f"{operation}:unpacked")
            if progress is not None:
                progress(Progress(Phase.DONE, found.config_digest, len(found.layers), len(found.layers)))
            config = ImageConfig.from_oci(found.config, found.diff_ids)
        except BaseException:
            self._abandon(staging_dir)
            raise
        return self._commit([normalize_name(name)] if name else [], found.config_digest, staging_dir, config)

    def commit(self, parent: Image, changes_tar: Path, config: ImageConfig, names: list[str],
               history: dict[str, Any]) -> Image:
        """A new image: ``parent``'s layers, the layer tar ``changes_tar`` (moved into the store) on top, and
        ``config``; ``history`` is its step in the config's history (``created_by``, ``comment``, ``author``)."""
        import copy

        staging_dir = self._staging()
        try:
            with self._blobs_locked():
                blobs = self.blobs_dir / "sha256"
                blobs.mkdir(parents=True, exist_ok=True)
                if parent.layout is not None:  # the parent's blobs (shared already, or linked in) and document
                    found = read_layout(parent.layout, self.blobs_dir)
                    for blob in found.layers:
                        if not (blobs / blob.name).exists():
                            _link_or_copy(blob, blobs / blob.name)
                    descriptors, document = list(found.descriptors), copy.deepcopy(found.config)
                else:  # a flat image (the built-in busybox, an import): its root becomes the bottom layer
                    descriptors = [tar_layer(parent.rootfs, blobs, self.namespace.command(["tar"]))]
                    document = {"architecture": architecture(), "os": "linux",
                                "rootfs": {"type": "layers", "diff_ids": [descriptors[0]["digest"]]},
                                "history": [{"created": _iso(parent.config.created),
                                             "created_by": f"kernelext: {parent.name} as one layer"}]}
                    self._unpack(blobs / descriptors[0]["digest"].removeprefix(SHA256_PREFIX),
                                 descriptors[0]["digest"], "commit")
                descriptors.append(blob_descriptor(changes_tar, rename_into=blobs))
                diff_id = descriptors[-1]["digest"]
                self._unpack(blobs / diff_id.removeprefix(SHA256_PREFIX), diff_id, "commit")
                now = time.time()
                document.update({"created": _iso(now), "config": config.to_oci()})
                if history.get("author"):
                    document["author"] = history["author"]
                document["rootfs"]["diff_ids"] = [*document["rootfs"]["diff_ids"], diff_id]
                document["history"] = [*(document.get("history") or []),
                                       {"created": _iso(now), **{k: v for k, v in history.items() if v}}]
                image_id = write_layout(staging_dir / LAYOUT_DIR, document, descriptors, self.blobs_dir)
            new_config = ImageConfig.from_oci(document, document["rootfs"]["diff_ids"])
        except BaseException:
            self._abandon(staging_dir)
            raise
        return self._commit(names, image_id, staging_dir, new_config)

    def save(self, name_or_id: str, output: Path, fmt: str = "docker-archive") -> Image:
        """``podman save``: the image as an archive skopeo writes (``oci-archive`` or ``docker-archive``)."""
        if fmt not in SAVE_FORMATS:
            raise InvalidArgumentError(f"unsupported format {fmt!r}: use {' or '.join(SAVE_FORMATS)}",
                                       operation="save")
        image = self.get(name_or_id)
        # podman records the name it was given: an image saved by its ID loads without one
        name = normalize_name(name_or_id) if normalize_name(name_or_id) in image.names else None
        dest = f"{fmt}:{output.absolute()}" + (f":{':'.join(repo_tag(name))}" if name else "")
        if output.is_dir():
            raise InvalidArgumentError(f"{output}: is a directory: save writes an archive file", operation="save")
        if output.exists() and not output.is_file():
            # a device or FIFO (as root, /dev/null) is never unlinked: skopeo writes a file beside, copied into it
            spool = staging.make_dir(self.opts.root / "images")  # a killed save's: collected as any staging
            try:
                archive = spool / "archive"
                self._copy_out(image, dest.replace(f"{fmt}:{output.absolute()}", f"{fmt}:{archive}", 1),
                               self._copy_options(), "save")
                with open(archive, "rb") as src, open(output, "wb") as sink:
                    shutil.copyfileobj(src, sink, SAVE_COPY_BUFFER)
            finally:
                shutil.rmtree(spool, ignore_errors=True)
            return image
        output.unlink(missing_ok=True)  # skopeo refuses to overwrite an archive
        self._copy_out(image, dest, self._copy_options(), "save")
        return image

    def push(self, name_or_id: str, dest: str, options: skopeo.CopyOptions = skopeo.CopyOptions(),  # noqa: B008
             progress: ProgressCallback | None = None) -> Image:
        """``podman push``: the image to a registry (``[docker://]host/name[:tag]``) or to a file transport
        (``dir:PATH``, ``oci:PATH[:NAME]``, ``docker-archive:PATH``, ``oci-archive:PATH``)."""
        image = self.get(name_or_id)
        if file_transport(dest) is None:
            dest = skopeo.docker_reference(dest)
        self._copy_out(image, dest, self._copy_options(options), "push", progress)
        return image

    def _copy_out(self, image: Image, dest: str, options: skopeo.CopyOptions, operation: str,
                  progress: ProgressCallback | None = None) -> None:
        """skopeo's copy of ``image`` to ``dest``: from its layout, or a flat image as a one-layer layout."""
        if image.layout is not None:
            with self._blobs_locked():
                blobs = blobs_of(image.layout, self.blobs_dir)
                skopeo.copy(f"oci:{image.layout}", dest, options, operation=operation, progress=progress,
                            shared_blobs=blobs if blobs == self.blobs_dir else None, shared_source=True)
            return
        staging_dir = self._staging()
        try:
            write_flat_layout(image.rootfs, image.config.to_oci(), staging_dir / LAYOUT_DIR,
                              self.namespace.command(["tar"]))
            skopeo.copy(f"oci:{staging_dir / LAYOUT_DIR}", dest, options, operation=operation, progress=progress)
        finally:
            self.namespace.remove_tree(staging_dir)

    # ------------------------------------------------------------ shared blobs
    @property
    def blobs_dir(self) -> Path:
        """The compressed blobs (manifests, configs, layers) of every image's layout, each kept once: skopeo
        fetches only those not here yet."""
        return self.opts.root / BLOBS_DIR

    @contextmanager
    def _blobs_locked(self, *, exclusive: bool = False) -> Iterator[bool]:
        """Shared while an image brings or reads blobs; exclusive (never waiting: False when busy) to delete."""
        import fcntl

        self.opts.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.opts.root / BLOBS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _collect_blobs(self) -> None:
        """Delete the shared blobs no image's layout names (skipped while another process uses them)."""
        if not (self.blobs_dir / "sha256").is_dir():
            return
        with self._blobs_locked(exclusive=True) as mine:
            if mine:  # else a pull or commit is under way: the next removal collects
                self._unused_blobs(self.all())

    def _unused_blobs(self, images: list[Image]) -> None:
        """Delete the blobs the layouts of ``images`` do not name (the exclusive lock is held)."""
        sha256 = self.blobs_dir / "sha256"
        needed: set[str] = set()
        for image in images:
            if image.layout is not None:
                try:
                    needed.update(d.removeprefix(SHA256_PREFIX)
                                  for d in read_layout(image.layout, self.blobs_dir).digests)
                except ImageFormatError:
                    continue
        for name in os.listdir(sha256) if sha256.is_dir() else []:
            if name not in needed and not (staging.is_staging(name) and staging.owner_alive(name)):
                (sha256 / name).unlink(missing_ok=True)

    # ---------------------------------------------------- after a killed command
    def recover(self) -> None:
        """Clean up after image operations whose process died (a pull, load, commit or removal killed part-way).

        Cheap when none did: two directory listings. Each operation works under a staging entry named after
        its process (:mod:`kernelext.storage.staging`) and removes it last, so an entry whose process is gone
        says that something may be left half-made: then everything no image record accounts for goes.
        """
        if any(not staging.owner_alive(name)
               for parent in (self.opts.root / "images", self.layers_dir)
               for name in staging.staging_entries(parent)):
            self.collect_garbage()

    def collect_garbage(self) -> bool:
        """Remove what no image record accounts for: staging entries of dead processes, image directories
        without a record, layers no image lists, blobs no layout names. Done only when no other process is
        at work on images (the blob lock taken exclusively, no live staging entry); False when it was not."""
        images_dir, sha256 = self.opts.root / "images", self.blobs_dir / "sha256"
        with self._blobs_locked(exclusive=True) as mine:
            places = [(d, staging.staging_entries(d)) for d in (images_dir, self.layers_dir, sha256)]
            if not mine or any(staging.owner_alive(n) for _, names in places for n in names):
                return False  # another process is bringing, committing or removing an image: it finishes first
            images = self.all()
            ids = {image.id for image in images}
            used = {diff_id.removeprefix(SHA256_PREFIX) for image in images for diff_id in image.config.layers}
            for folder, keep in ((images_dir, ids), (self.layers_dir, used)):
                for name in os.listdir(folder) if folder.is_dir() else []:
                    if not staging.is_staging(name) and name not in keep:
                        self._discard(folder / name)
            self._unused_blobs(images)
            for folder, names in places:  # the marks last: killed before this, the next process starts again
                for name in names:
                    self._discard(folder / name)
        return True

    def _abandon(self, staging_dir: Path) -> None:
        """A failed operation's staging directory: what it brought (blobs skopeo fetched, layers unpacked) is
        taken away with it, now, or by the next process when another one is at work on images."""
        if staging.abandon(staging_dir) is not None:
            self.collect_garbage()

    def _discard(self, path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            if self._trash is not None:
                self._trash.put(path)
            else:
                self.namespace.remove_tree(path)
        else:
            path.unlink(missing_ok=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


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
        raise ImageFormatError(f"{PAYLOAD_UNKNOWN}: {archive} is not a (compressed) tar archive",
                              operation="load") from None
    except (OSError, ValueError, AttributeError, IndexError) as exc:
        raise ImageFormatError(f"{archive}: not an image archive: {exc}", operation="load") from None
    raise ImageFormatError(f"{PAYLOAD_UNKNOWN}: {archive} is neither a docker-archive nor an oci-archive",
                           operation="load")
