"""podman's ``image tree`` of the local store: an image's layers and the images that share or build on them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernelext.units import image_size

if TYPE_CHECKING:
    from kernelext.core.runtime import Runtime
    from kernelext.storage.images import Image


def tree_lines(rt: Runtime, name: str, *, whatrequires: bool = False) -> list[str]:
    """podman's ``image tree``: the image's layers bottom first, each marked with the images it is the top
    of, and (kernelext's addition) how many images share it; ``whatrequires``: the images built on it."""
    image = rt.image(name)
    everyone = rt.images()
    lines = [f"Image ID: {image.short_id}", f"Tags:     {_tags(image)}", f"Size:     {image_size(image.config.size)}"]
    if whatrequires:
        children = [other for other in everyone if other.id != image.id and image.config.layers and
                    other.config.layers[:len(image.config.layers)] == image.config.layers]
        return lines + [f"{_branch(i, len(children))}ID: {child.short_id} Tags: {_tags(child)}"
                        for i, child in enumerate(children)]
    lines.append("Image Layers")
    sizes = image.config.layer_sizes or [image.config.size]
    layer_ids = image.config.layers or [f"sha256:{image.id}"]
    for i, (diff_id, size) in enumerate(zip(layer_ids, sizes)):
        tops = [t for other in everyone if other.config.layers and other.config.layers[-1] == diff_id
                for t in other.repo_tags or [other.short_id]]
        sharing = sum(1 for other in everyone if diff_id in other.config.layers)
        line = f"{_branch(i, len(layer_ids))}ID: {diff_id.removeprefix('sha256:')[:12]} Size: {image_size(size)}"
        if sharing > 1:
            line += f" Shared by: {sharing} images"
        if tops:
            line += f" Top Layer of: {_tags_list(tops)}"
        lines.append(line)
    return lines


def _branch(index: int, count: int) -> str:
    return "└── " if index == count - 1 else "├── "


def _tags(image: Image) -> str:
    return _tags_list(image.repo_tags)


def _tags_list(tags: list[str]) -> str:
    return "[" + " ".join(tags) + "]"
