"""The CLI's image commands: ``images``, ``pull``, ``load``, ``save``, ``history``, ``tag``, ``rmi``, ``commit``, ...

As the other handlers (:mod:`kernelext.cli.commands`): parse results in, core
calls, podman's text and exit codes out.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kernelext.cli.commands import _inspect_each, _template, _truncate, command, confirmed, err, out
from kernelext.cli.format import parse_time as parse_moment
from kernelext.cli.format import since, table
from kernelext.cli.parser import UsageError
from kernelext.domain.engine import Engine, ImageRecord, unsupported
from kernelext.errors import ImageInUseError, KernelextError, NoSuchImageError
from kernelext.units import format_time, go_time, image_size

if TYPE_CHECKING:  # the local store's modules: imported by the handlers that use them, never at a remote command's start
    from kernelext.core.runtime import Runtime
    from kernelext.storage.images import HistoryEntry, Image, Removal
    from kernelext.storage.progress import Progress, ProgressCallback

NONE = "<none>"
MISSING = "<missing>"
#: podman's exit codes of ``rmi``: an image that does not exist, one that containers use.
RMI_NO_SUCH_IMAGE = 1
RMI_IN_USE = 2
#: ``image exists``: podman's answer as the exit code.
EXISTS_NO = 1
CREATED_BY_WIDTH = 45
PRUNE_WARNING = {False: "WARNING! This command removes all dangling images.",
                 True: "WARNING! This command removes all images without at least one container associated with "
                       "them."}
#: ``--format "table ..."`` headings of each field (podman's).
HEADINGS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "Created": "CREATED",
            "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "CreatedBy": "CREATED BY",
            "Comment": "COMMENT", "Containers": "CONTAINERS", "Dangling": "DANGLING", "Names": "NAMES"}


# ----------------------------------------------------------------- listing
def image_rows(rt: Runtime, images: list[Image], no_trunc: bool = False) -> list[dict[str, Any]]:
    """One row per name (a dangling image: one row of ``<none>``), newest image first, as podman lists them."""
    from kernelext.storage.images import repo_tag

    rows = []
    for image in sorted(images, key=lambda i: i.config.created, reverse=True):
        users = rt.images.users(image)
        base = {"Id": image.id, "ID": f"sha256:{image.id}" if no_trunc else image.short_id,
                "Digest": image_digest(image), "Created": int(image.config.created),
                "CreatedAt": go_time(image.config.created), "CreatedSince": since(image.config.created),
                "Size": image_size(image.config.size), "VirtualSize": image.config.size,
                "Containers": len(users), "UsedBy": sorted(users), "Dangling": image.dangling, "Names": image.repo_tags,
                "Labels": image.config.labels, "ReadOnly": False}
        for repository, tag in [repo_tag(n) for n in image.names] or [(NONE, NONE)]:
            rows.append({**base, "Repository": repository, "Tag": tag})
    return rows


def image_digest(image: Image) -> str:
    """The manifest digest of an image that came as (or was made into) an OCI layout; else its config's."""
    from kernelext.storage.ocilayout import manifest_digest

    digest = manifest_digest(image.layout) if image.layout is not None else None
    return digest if digest is not None else f"sha256:{image.id}"


#: ``images --filter since=IMAGE|before=IMAGE``: the images created after or before that one.
ORDER_FILTERS = ("since", "after", "before")  # podman's "after" is "since"


def _matches(image: Image | ImageRecord, filters: list[tuple[str, str]]) -> bool:
    """An image (the local store's, or a record of an engine's) against ``images``' filters."""
    from kernelext.storage.images import Image, has_label, normalize_name, repo_tag

    created = image.created if isinstance(image, ImageRecord) else image.config.created
    for key, value in filters:
        if key == "dangling":
            if (not image.names) != (value.lower() == "true"):
                return False
        elif key == "reference":
            pattern = normalize_name(value)
            # a remote's names are in full (localhost/busybox:latest): its short repository matches too
            candidates = [form for name in image.names
                          for form in (name, ":".join(repo_tag(name)), repo_tag(name)[0], name.split(":")[0],
                                       repo_tag(name)[0].removeprefix("localhost/"))]
            if not any(fnmatch.fnmatchcase(c, p) for c in candidates for p in (pattern, value)):
                return False
        elif key == "label" and not (isinstance(image, Image) and has_label(image, value)):
            return False
        elif key in ("since", "after") and created <= float(value):  # the value: the named image's creation
            return False                                               # time (listed_images resolves it)
        elif key == "before" and created >= float(value):
            return False
    return True


def _filters(specs: list[str]) -> list[tuple[str, str]]:
    filters = []
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or key not in ("dangling", "reference", "label", *ORDER_FILTERS):
            raise UsageError(f'invalid image filter "{spec}": use dangling=true|false, reference=PATTERN, '
                             f"label=KEY[=VALUE], since=IMAGE, after=IMAGE or before=IMAGE")
        if key == "dangling" and value.lower() not in ("true", "false"):
            raise UsageError(f'invalid filter "dangling={value}": must be true or false')
        filters.append((key, value))
    return filters


def _print_rows(args: argparse.Namespace, rows: list[dict[str, Any]], columns: list[tuple[str, str]],
                name: str) -> None:
    """Rows as ``json``, as a Go template (``table`` first: with headings), or as podman's table."""
    if args.format == "json":
        out(json.dumps(rows, indent=4))
        return
    fmt = args.format
    headings = not getattr(args, "noheading", False)
    if fmt and fmt.startswith("table"):
        fmt = fmt.removeprefix("table").strip() or "\t".join(f"{{{{.{key}}}}}" for key, _ in columns)
        template = _template(argparse.Namespace(format=fmt), name)
        assert template is not None
        cells = [template.render(row).split("\t") for row in rows]
        fields = [p.path[-1] for p in template.parts if not isinstance(p, str) and p.path]
        head = [HEADINGS.get(f, f.upper()) for f in fields]
        width = max([len(head), *map(len, cells)])
        text = table((head + [""] * width)[:width] if headings else [""] * width,
                     [(c + [""] * width)[:width] for c in cells])
        out(text if headings else text.split("\n", 1)[-1])
        return
    template = _template(args, name)
    if template is not None:
        for row in rows:
            out(template.render(row))
        return
    text = table([heading for _, heading in columns], [[str(row[key]) for key, _ in columns] for row in rows])
    if not headings:
        text = text.split("\n", 1)[1] if rows else ""
    if text:
        out(text)


def listed_images(rt: Runtime, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The rows ``images`` shows for its arguments (``--filter``, an IMAGE name, ``--no-trunc``)."""
    # since=/before= compare with the named image's creation time (podman's; an unknown image is an error).
    filters = [(key, repr(rt.image(value).config.created) if key in ORDER_FILTERS else value)
               for key, value in _filters(args.filter)]
    if args.image:
        filters.append(("reference", args.image))
    return image_rows(rt, [i for i in rt.images() if _matches(i, filters)], args.no_trunc)


def engine_images(engine: Engine, args: argparse.Namespace) -> list[dict[str, Any]]:
    """``images``' rows on any engine: the local store's in full, a remote engine's from its records
    (``--filter label=`` needs the local store yet)."""
    from kernelext.storage.images import normalize_name, repo_tag

    if not engine.remote:
        return listed_images(engine.local("images"), args)
    filters = _filters(args.filter)
    if any(key == "label" for key, _ in filters):
        raise unsupported(engine.name, "images --filter label")
    records = engine.images()

    def created(name: str) -> float:
        found = [r for r in records if r.id.startswith(name) or any(":".join(repo_tag(normalize_name(name))) ==
                                                                   ":".join(repo_tag(n)) for n in r.names)]
        if not found:
            raise NoSuchImageError(f"{name}: image not known")
        return found[0].created
    filters = [(key, repr(created(value)) if key in ORDER_FILTERS else value) for key, value in filters]
    if args.image:
        filters.append(("reference", args.image))
    return record_rows([r for r in records if _matches(r, filters)], args.no_trunc)


def record_rows(records: list[ImageRecord], no_trunc: bool = False,
                users: Mapping[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """``images``' rows of an engine's records (the fields podman's ``ListImage`` gives), newest first;
    ``users``: the names of the containers made from each image (:func:`image_users`), when known."""
    from kernelext.storage.images import repo_tag

    rows = []
    for image in sorted(records, key=lambda i: i.created, reverse=True):
        names = [":".join(repo_tag(n)) for n in image.names]
        used_by = sorted((users or {}).get(image.id, []))
        base = {"Id": image.id, "ID": f"sha256:{image.id}" if no_trunc else image.id[:12],
                "Digest": f"sha256:{image.id}", "Created": int(image.created), "CreatedAt": format_time(image.created),
                "CreatedSince": since(image.created), "Size": image_size(image.size), "VirtualSize": image.size,
                "Containers": len(used_by), "UsedBy": used_by, "Dangling": not names, "Names": names, "Labels": {},
                "ReadOnly": False}
        for repository, tag in [repo_tag(n) for n in image.names] or [(NONE, NONE)]:
            rows.append({**base, "Repository": repository, "Tag": tag})
    return rows


def image_users(engine: Engine) -> dict[str, list[str]]:
    """The names of each image's containers on an engine (its ``ps -a``), by image ID: what the local store's
    ``users`` answers, for an engine whose image list gives only a count."""
    users: dict[str, list[str]] = {}
    for ctr in engine.ps(all=True):
        users.setdefault(ctr.image_id.removeprefix("sha256:"), []).append(ctr.name)
    return users


@command("image-ls", engine=True)
def cmd_image_ls(engine: Engine, args: argparse.Namespace) -> int:
    _template(args, "images")  # a malformed template is refused before anything is listed
    rows = engine_images(engine, args)
    if args.quiet:
        seen: set[str] = set()
        for row in rows:
            if row["ID"] not in seen:
                seen.add(row["ID"])
                out(row["ID"])
        return 0
    columns = [("Repository", "REPOSITORY"), ("Tag", "TAG")] + ([("Digest", "DIGEST")] if args.digests else []) + \
        [("ID", "IMAGE ID"), ("CreatedSince", "CREATED"), ("Size", "SIZE")]
    if args.format == "json":
        rows = [{"Id": r["Id"], "ParentId": "", "RepoTags": r["Names"], "RepoDigests": [], "Size": r["VirtualSize"],
                 "SharedSize": 0, "VirtualSize": r["VirtualSize"], "Labels": r["Labels"], "Containers": r["Containers"],
                 "Names": r["Names"], "Digest": r["Digest"], "Created": r["Created"],
                 "CreatedAt": format_time(r["Created"]),  # the JSON's: RFC 3339 (to the second, as "Created")
                 "Dangling": r["Dangling"]} for r in {r["Id"]: r for r in rows}.values()]
    _print_rows(args, rows, columns, "images")
    return 0


def history_rows(engine: Engine, name: str, *, no_trunc: bool = False,
                 human: bool = True) -> tuple[list[dict[str, Any]], list[HistoryEntry]]:
    """``history``'s rows, newest step first, and the steps they show."""
    from kernelext.storage.images import parse_time

    tags, entries = engine.image_history(name)
    rows: list[dict[str, Any]] = []
    for entry in entries:
        created = parse_time(entry.created)
        shown_id = (f"sha256:{entry.id}" if no_trunc else entry.id[:12]) if entry.id else MISSING
        rows.append({"ID": shown_id, "Created": since(created) if human else format_time(created),
                     "CreatedSince": since(created), "CreatedAt": go_time(created),  # as images' template
                     "CreatedBy": entry.created_by if no_trunc else _truncate(entry.created_by, CREATED_BY_WIDTH),
                     "Size": image_size(entry.size) if human else str(entry.size), "Comment": entry.comment,
                     "Tags": tags if entry.id and not rows else None})  # the names on the image's own step
    return rows, entries


@command("image-history", engine=True)
def cmd_image_history(engine: Engine, args: argparse.Namespace) -> int:
    from kernelext.storage.images import parse_time

    _template(args, "history")
    rows, entries = history_rows(engine, args.image, no_trunc=args.no_trunc, human=args.human)
    if args.quiet:
        for row in rows:
            out(row["ID"])
        return 0
    if args.format == "json":
        rows = [{"id": r["ID"] if r["ID"] != MISSING else MISSING, "created": format_time(parse_time(entry.created)),
                 "CreatedBy": r["CreatedBy"], "Size": r["Size"], "Comment": r["Comment"], "Tags": r["Tags"]}
                for r, entry in zip(rows, entries, strict=True)]
    _print_rows(args, rows, [("ID", "ID"), ("Created", "CREATED"), ("CreatedBy", "CREATED BY"), ("Size", "SIZE"),
                             ("Comment", "COMMENT")], "history")
    return 0


@command("image-tree", engine=True)
def cmd_image_tree(engine: Engine, args: argparse.Namespace) -> int:
    for line in engine.image_tree(args.image, whatrequires=args.whatrequires):
        out(line)
    return 0


# ------------------------------------------------------------------- names
@command("image-tag", engine=True)
def cmd_image_tag(engine: Engine, args: argparse.Namespace) -> int:
    engine.tag(args.image, *args.targets)
    return 0


@command("image-untag", engine=True)
def cmd_image_untag(engine: Engine, args: argparse.Namespace) -> int:
    engine.untag(args.image, *args.names)
    return 0


@command("image-exists", engine=True)
def cmd_image_exists(engine: Engine, args: argparse.Namespace) -> int:
    return 0 if engine.image_exists(args.image) else EXISTS_NO


# ------------------------------------------------------------------ removal
@command("image-rm", engine=True)
def cmd_image_rm(engine: Engine, args: argparse.Namespace) -> int:
    if args.all == bool(args.images):
        raise UsageError("when using the --all switch, you may not pass any images names or IDs"
                         if args.all else "image name or ID must be specified")
    names = [image.id for image in reversed(engine.images())] if args.all else args.images
    code = 0
    for name in names:
        try:
            lines = engine.remove_image(name, force=args.force)
        except NoSuchImageError as exc:
            if not (args.ignore or args.force):  # podman's rmi --force: a missing image is no error
                err(f"Error: {exc}")
                code = RMI_NO_SUCH_IMAGE
            continue
        except ImageInUseError as exc:
            err(f"Error: {exc}")
            code = RMI_IN_USE
            continue
        except KernelextError as exc:
            err(f"Error: {exc}")
            code = 125
            continue
        for line in lines:
            out(line)
    return code


def removal_lines(removal: Removal) -> list[str]:
    """What podman's ``rmi`` prints for one image."""
    return removal.lines()


@command("image-prune", engine=True)
def cmd_image_prune(engine: Engine, args: argparse.Namespace) -> int:
    if not args.force and not confirmed(f"{PRUNE_WARNING[args.all]}\n"):
        return 0
    for ident in engine.prune_images(all=args.all, **prune_filters(args.filter)):
        out(ident)
    return 0


def prune_filters(specs: list[str]) -> dict[str, Any]:
    """``image prune --filter``s (podman's ``until=``, ``label=``, ``label!=``) as prune_images' arguments."""
    until: float | None = None
    labels: list[str] = []
    not_labels: list[str] = []
    for spec in specs:
        if spec.startswith("label!="):
            not_labels.append(spec.removeprefix("label!="))
        elif spec.startswith("label="):
            labels.append(spec.removeprefix("label="))
        elif spec.startswith("until="):
            until = parse_moment(spec.removeprefix("until="))
        else:
            raise UsageError(f'invalid image filter "{spec}": use until=TIME, label=KEY[=VALUE] or '
                             f"label!=KEY[=VALUE]")
    return {"until": until, "labels": labels, "not_labels": not_labels}


# ------------------------------------------------------------------ commit
@command("commit", engine=True)
def cmd_commit(engine: Engine, args: argparse.Namespace) -> int:
    out(engine.commit(args.container, args.image, changes=args.change, message=args.message, author=args.author,
                      pause=args.pause))
    return 0


# ------------------------------------------------------- transports, import
def import_command(changes: list[str]) -> list[str] | None:
    """``import --change``'s CMD (the only instruction carried), the last one given."""
    from kernelext.storage.imagechanges import shell_command

    cmd: list[str] | None = None
    for change in changes:
        key, _, value = change.replace("=", " ", 1).partition(" ")
        if key.upper() != "CMD":
            raise UsageError(f"unsupported --change instruction {key!r}: only CMD")
        cmd = shell_command(value.strip())
    return cmd


@command("image-import", engine=True)
def cmd_image_import(engine: Engine, args: argparse.Namespace) -> int:
    cmd = import_command(args.change)
    out(engine.import_image(sys.stdin.buffer if args.tarball == "-" else args.tarball, args.name, cmd=cmd))
    return 0


def terminal_progress(quiet: bool) -> ProgressCallback | None:
    """podman's progress on a terminal: skopeo's lines (``Copying blob sha256:...``) on stderr; nothing when
    stderr is not a terminal or with ``-q``."""
    from kernelext.storage.progress import Phase

    if quiet or not sys.stderr.isatty():
        return None

    def show(event: Progress) -> None:
        if event.phase is Phase.STEP:
            err(event.message)
    return show


@command("image-pull", engine=True)
def cmd_image_pull(engine: Engine, args: argparse.Namespace) -> int:
    from kernelext.storage.images import file_transport, normalize_name, repo_tag

    if engine.remote:  # the service pulls from where it stands; its own credentials
        for flag, given in (("--all-tags", args.all_tags), ("--authfile", args.authfile)):
            if given:
                raise unsupported(engine.name, f"pull {flag}")
        out(engine.pull(args.image, tls_verify=args.tls_verify))
        return 0
    rt = engine.local("pull")
    progress = terminal_progress(args.quiet)
    if progress is not None and file_transport(args.image) is None:  # a registry's reference is resolved
        err(f"Trying to pull {':'.join(repo_tag(normalize_name(args.image.removeprefix('docker://'))))}...")
    if args.all_tags:
        for image in rt.pull_all_tags(args.image, tls_verify=args.tls_verify, authfile=args.authfile,
                                      progress=progress):
            out(image.id)
        return 0
    out(rt.pull(args.image, tls_verify=args.tls_verify, authfile=args.authfile, progress=progress).id)
    return 0


@command("image-load", engine=True)
def cmd_image_load(engine: Engine, args: argparse.Namespace) -> int:
    names = engine.load_image(sys.stdin.buffer if args.input == "-" else args.input,
                              progress=terminal_progress(args.quiet))
    for shown in names:
        out(shown if args.quiet else f"Loaded image: {shown}")
    return 0


@command("image-push", engine=True)
def cmd_image_push(engine: Engine, args: argparse.Namespace) -> int:
    engine.push(args.image, args.destination, tls_verify=args.tls_verify, authfile=args.authfile,
                progress=terminal_progress(args.quiet))
    return 0


@command("image-save", engine=True)
def cmd_image_save(engine: Engine, args: argparse.Namespace) -> int:
    engine.save_image(args.image, args.output, format=args.format)
    return 0


@command("image-inspect", engine=True)
def cmd_image_inspect(engine: Engine, args: argparse.Namespace) -> int:
    return _inspect_each(args, args.images, engine.inspect_image)
