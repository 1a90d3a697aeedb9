"""``ImageList``: the store's images (or an engine's: a connection's) with their sizes and the containers that use
each (a refresh button)."""

from __future__ import annotations

from typing import Any

import anywidget
from traitlets import List

from kernelext.core.runtime import Runtime
from kernelext.domain.engine import Engine
from kernelext.widgets._assets import css, esm
from kernelext.widgets._registry import track


class ImageList(anywidget.AnyWidget):
    """One row per image name (as ``images``): repository, tag, ID, size, created, containers using it."""

    _esm = esm("controls.js", "images.js")
    _css = css("dashboard.css")

    rows: List[Any] = List().tag(sync=True)

    def __init__(self, runtime: Runtime | None = None, *, engine: Engine | None = None) -> None:
        """The local store's images (``runtime``, else the default one), or ``engine``'s (a remote's)."""
        from kernelext.core.runtime import default_runtime

        super().__init__()
        self.engine = engine
        self.runtime = runtime or (default_runtime() if engine is None else None)
        self.on_msg(self._on_message)
        self.refresh()
        track(self)

    def __repr__(self) -> str:
        return f"ImageList({len(self.rows)} images)"

    def refresh(self) -> None:
        from kernelext.cli.images import image_rows, image_users, record_rows

        listed = (record_rows(self.engine.images(), users=image_users(self.engine)) if self.engine is not None
                  else image_rows(self.runtime, self.runtime.images()) if self.runtime is not None else [])
        self.rows = [{"repository": r["Repository"], "tag": r["Tag"], "id": r["ID"], "size": r["Size"],
                      "created": r["CreatedSince"], "containers": ", ".join(r["UsedBy"])} for r in listed]

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list[bytes]) -> None:
        if content.get("type") == "refresh":
            self.refresh()
