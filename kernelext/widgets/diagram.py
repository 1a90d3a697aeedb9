"""``LifecycleDiagram``: libpod's state machine as a picture, the current state lit.

The SVG is drawn here, in Python, so the same picture is the widget's view
and the static ``image/svg+xml`` a notebook viewer (GitHub) shows. Its
colours are CSS classes styled by the theme's variables inside the SVG, with
light fallbacks for a viewer that has none. ``frozen`` keeps the state it was
drawn in (``%container diagram --snapshot``): a lab's step-by-step diagrams
keep illustrating their step after later cells run.
"""

from __future__ import annotations

import html
from typing import Any

import anywidget
from traitlets import Bool, Unicode

from kernelext.core.container import Container
from kernelext.core.events import Event
from kernelext.core.state import ContainerStatus
from kernelext.widgets._assets import css, esm
from kernelext.widgets._follow import ContainerFollower
from kernelext.widgets._registry import track

S = ContainerStatus
WIDTH, HEIGHT = 660, 250
NODE_W, NODE_H = 104, 34
#: Where each state sits (centre of its box).
POSITIONS = {
    S.CONFIGURED: (70, 50), S.CREATED: (230, 50), S.RUNNING: (410, 50), S.PAUSED: (590, 50),
    S.STOPPING: (410, 200), S.STOPPED: (230, 200), S.EXITED: (70, 200), S.REMOVING: (590, 135),
}
#: The transitions drawn, with the call that causes each (docs/architecture.md §2).
EDGES = [
    (S.CONFIGURED, S.CREATED, "init"), (S.CREATED, S.RUNNING, "start"), (S.RUNNING, S.PAUSED, "pause"),
    (S.PAUSED, S.RUNNING, "unpause"), (S.RUNNING, S.STOPPING, "stop"), (S.STOPPING, S.STOPPED, "exit"),
    (S.RUNNING, S.STOPPED, "exit / kill"), (S.STOPPED, S.EXITED, "cleanup"), (S.EXITED, S.CREATED, "init / start"),
    (S.STOPPED, S.REMOVING, "rm"), (S.EXITED, S.RUNNING, "restore"),
]
#: The picture's classes, coloured by the host theme (JupyterLab's variables, VS Code's, then light defaults).
STYLE = (
    "<style>"
    ".kx-d-box{fill:var(--jp-layout-color1,var(--vscode-editor-background,#fff));"
    "stroke:var(--jp-border-color1,#8c959f);stroke-width:1.5}"
    ".kx-d-label{fill:var(--jp-ui-font-color1,var(--vscode-foreground,#24292f))}"
    ".kx-d-lit{fill:#1b5e20;stroke:#1b5e20}"  # dark in every theme: its white label reads
    ".kx-d-lit-label{fill:#fff;font-weight:bold}"
    ".kx-d-edge{stroke:var(--jp-ui-font-color2,#6e7781);stroke-width:1.2}"
    ".kx-d-edge-label{fill:var(--jp-ui-font-color1,#24292f)}"
    ".kx-d-mark{stroke:var(--jp-error-color1,#c62828);stroke-width:2.5}"
    ".kx-d-mark-label{fill:var(--jp-error-color1,#c62828);font-weight:bold}"
    ".kx-d-arrow{fill:var(--jp-ui-font-color2,#6e7781)}.kx-d-arrow-mark{fill:var(--jp-error-color1,#c62828)}"
    "body[data-jp-theme-light=false] .kx-d-mark{stroke:var(--jp-error-color2,#e57373)}"
    "body[data-jp-theme-light=false] .kx-d-mark-label,body[data-jp-theme-light=false] .kx-d-arrow-mark"
    "{fill:var(--jp-error-color2,#e57373)}"
    "</style>")


def _edge(a: ContainerStatus, b: ContainerStatus, label: str, marked: bool) -> str:
    (x1, y1), (x2, y2) = POSITIONS[a], POSITIONS[b]
    dx, dy = x2 - x1, y2 - y1
    # Leave the boxes' borders; offset opposite pairs (pause/unpause) so both arrows show.
    sx = NODE_W / 2 if dx else 0
    sy = NODE_H / 2 if dy else 0
    paired = any((b, a) == (e[0], e[1]) for e in EDGES)
    ox = 6 if paired and not dx and a.value < b.value else (-6 if paired and not dx else 0)
    oy = 6 if paired and not dy and a.value < b.value else (-6 if paired and not dy else 0)
    x1b = x1 + (sx if dx > 0 else -sx) + ox
    x2b = x2 - (sx if dx > 0 else -sx) + ox
    y1b = y1 + (sy if dy > 0 else -sy) + oy
    y2b = y2 - (sy if dy > 0 else -sy) + oy
    kind = "mark" if marked else "edge"
    # Labels sit 60% along the arrow: clear of crossing arrows at the midpoints.
    mx, my = x1b + 0.6 * (x2b - x1b), y1b + 0.6 * (y2b - y1b) + (0 if dy else (13 if oy > 0 else -5))
    return (f'<line x1="{x1b:.0f}" y1="{y1b:.0f}" x2="{x2b:.0f}" y2="{y2b:.0f}" class="kx-d-{kind}" '
            f'marker-end="url(#{"kx-mark" if marked else "kx-arrow"})"/>'
            f'<text x="{mx + (4 if dy else 0):.0f}" y="{my:.0f}" font-size="11" class="kx-d-{kind}-label" '
            f'text-anchor="{"start" if dy else "middle"}">{html.escape(label)}</text>')


def lifecycle_svg(current: ContainerStatus | None = None, previous: ContainerStatus | None = None) -> str:
    title = f"container lifecycle: {current.value}" if current else "container lifecycle"
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" role="img" aria-label="{title}">'),
             f"<title>{title}</title>", STYLE,
             "<defs>" + "".join(
                 f'<marker id="{mid}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
                 f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="kx-d-{cls}"/></marker>'
                 for mid, cls in (("kx-arrow", "arrow"), ("kx-mark", "arrow-mark"))) + "</defs>"]
    for a, b, label in EDGES:
        parts.append(_edge(a, b, label, marked=(previous, current) == (a, b)))
    for state, (x, y) in POSITIONS.items():
        lit = state is current
        parts.append(f'<rect x="{x - NODE_W / 2:.0f}" y="{y - NODE_H / 2:.0f}" width="{NODE_W}" height="{NODE_H}" '
                     f'rx="8" class="kx-d-box{" kx-d-lit" if lit else ""}"/>'
                     f'<text x="{x}" y="{y + 4}" font-size="12" text-anchor="middle" '
                     f'class="{"kx-d-lit-label" if lit else "kx-d-label"}">{state.value}</text>')
    parts.append("</svg>")
    return "".join(parts)


class LifecycleDiagram(anywidget.AnyWidget):
    _esm = esm("diagram.js")
    _css = css("diagram.css")

    svg = Unicode("").tag(sync=True)
    status = Unicode("").tag(sync=True)
    previous = Unicode("").tag(sync=True)
    frozen = Bool(False).tag(sync=True)

    def __init__(self, container: Container | None = None, *, frozen: bool = False, **kwargs: Any) -> None:
        super().__init__(frozen=frozen, **kwargs)
        self.container = container
        self._follower: ContainerFollower | None = None
        if container is None:
            self.svg = lifecycle_svg()
            return
        self._show(container.status, None)
        if not frozen:
            self._follower = ContainerFollower(container, self._changed)
            track(self)

    def _show(self, status: ContainerStatus, previous: ContainerStatus | None) -> None:
        self.status, self.previous = status.value, previous.value if previous else ""
        self.svg = lifecycle_svg(status, previous)

    def _changed(self, container: Container, event: Event | None) -> None:
        current = ContainerStatus(self.status)
        if container.status is not current:
            self._show(container.status, current)

    def __repr__(self) -> str:
        if self.container is None:
            return "LifecycleDiagram()"
        return f"LifecycleDiagram({self.container.name}: {self.status}{', snapshot' if self.frozen else ''})"

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        return {**data, "image/svg+xml": self.svg}, metadata

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()
        super().close()
