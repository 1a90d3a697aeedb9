"""The magics' golden notebook on both engines: one notebook of ``%container`` cells, run in a real kernel
(nbclient) once on the local store and once with ``%config ContainerMagics.connection`` naming a real podman
service (Debian's podman 4.3, tests/podmanservice.py), its outputs compared cell by cell.

Before the comparison each output goes through :func:`normalise` (IDs, times, durations, the run's own
directory, sizes, table padding: what differs between any two runs; each stream's text whole). What is still
different must be one of podman's differences, listed with its reason: :data:`PODMAN_WORDS` (podman's words
for the same thing), :data:`SORTED` (podman's order), :data:`CELL_DIFFERENCES` (a cell whose output is another
thing on podman's API, each side then checked on its own). Every other cell must give the same outputs on
both engines, and each listed difference must still be one (docs/architecture.md §16, "The magics' golden
notebook on both engines").
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from podmanservice import PODMAN, PodmanService, serve

import kernelext

from conftest import Store, needs_root
from registry import Registry, registry  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, needs_root,
              pytest.mark.skipif(not os.path.exists(PODMAN), reason="needs podman")]

#: The connection the remote run names (in the kernel's own connection store).
CONNECTION = "lab"
COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"

#: The notebook: ``{connection}`` is "" (the local store) or the service's connection, ``{work}`` the run's
#: directory (files copied in and out, the checkpoint's archive), ``{image}`` what ``pull`` fetches.
CELLS: list[str] = [
    "%load_ext kernelext",
    "%config ContainerMagics.connection = \"{connection}\"\nimport time\nt0 = time.time()",
    # attached output: both streams into the cell, the exit code in _exit_code
    "%container run --rm --name once busybox sh -c 'echo out; sleep 0.1; echo err >&2; sleep 0.1; exit 3'",
    "print(_exit_code)",
    "%container run -d --name web busybox sh -c 'echo hello; echo warn >&2; exec sleep 1000'",
    "%container ps",
    "%container ps -q",
    ("%container inspect --format '{{{{.Name}}}} {{{{.State.Status}}}} {{{{.State.Running}}}} {{{{.Config.Cmd}}}} "
     "{{{{.HostConfig.AutoRemove}}}}' web"),
    "%container inspect --format '{{{{.Config.Labels}}}}' web",
    "time.sleep(0.3)\n%container logs web",
    "%container logs --tail 1 web",
    "%container exec web sh -c 'echo out; echo err >&2; exit 2'",
    "print(_exit_code)",
    "%container exec -w /tmp -e X=1 web sh -c 'pwd; echo $X'",
    "%%container exec web\necho from a cell; hostname | wc -c",
    "%container top web",
    "%container pause web",
    "%container inspect --format '{{{{.State.Status}}}}' web",
    "%container unpause web",
    "%container stop -t 0 web",
    "%container inspect --format '{{{{.State.Status}}}} {{{{.State.ExitCode}}}}' web",
    "%container start web",
    "%container restart -t 0 web",
    "%container inspect --format '{{{{.State.Status}}}} {{{{.RestartCount}}}}' web",
    # files both ways
    "%container cp {work}/notes.txt web:/tmp/",
    "%container exec web cat /tmp/notes.txt",
    "%container cp web:/tmp/notes.txt {work}/back.txt\nprint(open('{work}/back.txt').read(), end='')",
    "%container cp web:/nowhere {work}/",
    # checkpoint with export, removed, restored by import: the counter goes on
    f"%container run -d --name count busybox sh -c '{COUNTER}'",
    "time.sleep(1)\n%container checkpoint --export {work}/count.tar.gz count",
    "%container inspect --format '{{{{.State.Status}}}}' count",
    "%container rm count",
    "%container restore --import {work}/count.tar.gz",
    "%container inspect --format '{{{{.State.Status}}}}' count",
    ("time.sleep(1)\nfrom IPython.utils.capture import capture_output\n"
     "with capture_output() as logs:\n    get_ipython().run_line_magic('container', 'logs count')\n"
     "nums = [int(n) for n in logs.stdout.split()]\nprint(nums == list(range(len(nums))), len(nums) > 12)"),
    "%container rm -f -t 0 count",
    # images: list, pull, remove
    "%container images --format '{{{{.Repository}}}}:{{{{.Tag}}}}'",
    "%container pull -q --tls-verify=false {image}",
    "%container images --format '{{{{.Repository}}}}:{{{{.Tag}}}}'",
    "%container rmi {image}",
    # errors: one line each, podman's message
    "%container stop nope",
    "print(_exit_code)",
    "%container rm nope",
    "%container logs nope",
    "%container exec nope true",
    "%container inspect --format x nope",
    "%container run --rm --name bad busybox nosuchcommand",
    "print(_exit_code)",
    "%container run --nosuchflag busybox true",
    "%container exec web",
    "%container run -d --name web busybox true",
    # the end: removed, nothing left; what happened, from the engine's events
    "%container rm -f -t 0 web",
    "%container ps -a",
    ("%container events --stream=false --since {{t0}} --filter type=container --filter event=create "
     "--filter event=start --filter event=remove"),
]

#: Cells whose outputs differ as a whole between the engines, and why: podman's API gives something else there.
#: Anything not listed here must match (after :func:`normalise` and :data:`PODMAN_WORDS`).
CELL_DIFFERENCES: dict[str, str] = {
    "%container inspect --format '{{{{.Config.Labels}}}}' web":
        "podman's inspect has Config.Labels null for a container without labels (Go's nil map): None, "
        "where the local core's document has {}",
    "time.sleep(1)\n%container checkpoint --export {work}/count.tar.gz count":
        "podman keeps no checkpoint history (docs/architecture.md §4): the remote checkpoint shows the container, "
        "the local one the history entry it made",
    "%container restore --import {work}/count.tar.gz":
        "a remote container is the service's list row (podman's ListContainer), which has no Restored flag: "
        "the remote card says running, the local one running, restored",
    "%container pull -q --tls-verify=false {image}":
        "the service pulls; podman's API answers the image's ID (no local Image object to show)",
}
#: Cells compared as sorted lines: the order is podman's, not a behaviour.
SORTED = {"%container images --format '{{{{.Repository}}}}:{{{{.Tag}}}}'":
          "the same image under two names: the service lists its Names newest first, the local store oldest first"}
#: Words podman's service uses where the local core uses others, and why: (reason, remote pattern, local text).
PODMAN_WORDS: list[tuple[str, str, str]] = [
    ("podman names a container's image as it resolved it (docs/architecture.md §16)",
     r"(?<=[( ])localhost/busybox:latest", "busybox"),
    (("the service starts an attached run through its attach endpoint, which prepares the container first: "
      "a start failure names that step"), r"preparing container ID for attach: ", ""),
]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    yield from serve(tmp_path_factory.mktemp("golden"))


def notebook(connection: str, work: Path, image: str) -> Any:
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(cell.format(connection=connection, work=work, image=image) if "{" in cell else cell)
        for cell in CELLS])


def execute(nb: Any, env: dict[str, str]) -> Any:
    from nbclient import NotebookClient

    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return nb


def outputs(cell: Any) -> list[tuple[str, ...]]:
    """A cell's outputs as (kind, name, text): each stream's text whole (how the kernel chunks and
    interleaves stdout and stderr is its flush timing), then results and errors in order (an error's
    name and value; tracebacks left out: they carry the kernel's frames)."""
    streams: dict[str, str] = {}
    shown: list[tuple[str, ...]] = []
    for o in cell.outputs:
        if o.output_type == "stream":
            streams[o.name] = streams.get(o.name, "") + o.text
        elif o.output_type == "error":
            shown.append(("error", o.ename, o.evalue))
        else:
            shown.append((o.output_type, "", "".join(o.get("data", {}).get("text/plain", ""))))
    return [("stream", name, text) for name, text in sorted(streams.items())] + shown


def normalise(text: str, work: Path) -> str:
    """What differs between any two runs: IDs, times, the run's directory, sizes."""
    text = text.replace(str(work), "WORK")
    text = re.sub(r"\b[0-9a-f]{64}\b", "ID", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "SHORTID", text)
    text = re.sub(r"\b(Up|Exited \(\d+\)) [\w ]+? ago\b|\bUp [\w ]+\b(?= )", r"\1 AGO", text)
    text = re.sub(r"\d+(\.\d+)? ?(B|kB|KB|MB|GB)\b", "SIZE", text)
    text = re.sub(r"\d\d:\d\d(:\d\d)?", "TIME", text)
    text = re.sub(r"\b\d+(\.\d+)?(ms|s)\b", "DURATION", text)  # top's ELAPSED and TIME
    text = re.sub(r" {2,}", "  ", text)  # a table's columns are as wide as their longest value
    return text


def runs(podman: PodmanService, store: Store, tmp_path: Path, image: str) -> dict[str, Any]:
    conf = tmp_path / "containers.conf"  # the kernel's connection store: the service as CONNECTION
    conf.write_text(f'[engine]\n[engine.service_destinations.{CONNECTION}]\nuri = "{podman.url}"\n')
    env = {"KERNELEXT_ROOT": str(store.runtime.opts.root), "KERNELEXT_RUNROOT": str(store.runtime.opts.runroot),
           "CONTAINERS_CONF": str(conf), "PODMAN_CONNECTIONS_CONF": str(tmp_path / "podman-connections.json"),
           "PYTHONPATH": str(Path(kernelext.__file__).parents[1])}
    done = {}
    for engine, connection in (("local", ""), ("remote", CONNECTION)):
        work = tmp_path / engine
        work.mkdir()
        (work / "notes.txt").write_text("copied in\n")
        done[engine] = (work, execute(notebook(connection, work, image), env))
    return done


def test_the_golden_notebook_gives_the_same_on_both_engines(podman: PodmanService, store: Store, tmp_path: Path,
                                                            registry: Registry) -> None:  # noqa: F811
    image = registry.ref("golden:1")
    pushed = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false",
                             f"docker-archive:{podman.directory}/busybox.tar", f"docker://{image}"],
                            capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    done = runs(podman, store, tmp_path, image)
    (local_work, local), (remote_work, far) = done["local"], done["remote"]
    words_seen: set[str] = set()

    def podman_words(text: str) -> str:
        for reason, pattern, replacement in PODMAN_WORDS:
            text, count = re.subn(pattern, replacement, text)
            words_seen.update([reason] if count else [])
        return text

    mismatches, differing = [], []
    for index, (source, mine, theirs) in enumerate(zip(CELLS, local.cells, far.cells)):
        a = [tuple(normalise(x, local_work) for x in o) for o in outputs(mine)]
        b = [tuple(podman_words(normalise(x, remote_work)) for x in o) for o in outputs(theirs)]
        if source in SORTED:
            a, b = ([(*o[:2], "".join(sorted(o[2].splitlines(keepends=True)))) for o in x] for x in (a, b))
        if source in CELL_DIFFERENCES:
            differing.append(source) if a != b else None
        elif a != b:
            mismatches.append(f"cell {index} {source!r}:\n  local:  {a}\n  remote: {b}")
    assert not mismatches, "\n".join(mismatches)
    # each documented difference is still one (a fixed difference leaves the list)
    assert sorted(differing) == sorted(CELL_DIFFERENCES)
    assert words_seen == {reason for reason, _, _ in PODMAN_WORDS}
    # and what each differing cell shows is right on its own engine
    shown = {engine: {source: outputs(cell) for source, cell in zip(CELLS, nb.cells)}
             for engine, (_, nb) in done.items()}
    checkpoint, restore, pull = list(CELL_DIFFERENCES)[1:]
    assert shown["local"][checkpoint] == [("execute_result", "", "Checkpoint 1 of count")]
    assert shown["remote"][checkpoint] == [("execute_result", "", "Container count (localhost/busybox:latest): exited")]
    assert shown["local"][restore] == [("execute_result", "", "Container count (busybox): running, restored")]
    assert shown["remote"][restore] == [("execute_result", "", "Container count (localhost/busybox:latest): running")]
    # the same image as localhost/busybox (its ID kept through the registry), untagged again by rmi
    busybox = [i.id for i in podman_images(podman) if "localhost/busybox:latest" in i.names]
    assert shown["remote"][pull] == [("execute_result", "", repr(busybox[0]))]
    # the counter carried on after the import on both (cell "nums == ...")
    counted = next(source for source in CELLS if "nums ==" in source)
    assert shown["local"][counted] == shown["remote"][counted] == [("stream", "stdout", "True True\n")]
    assert podman.remote("ps", "-a", "-q").stdout == ""


def podman_images(podman: PodmanService) -> list[Any]:
    from kernelext.connections import Connection
    from kernelext.domain.engine import engine_for

    engine = engine_for(Connection("", podman.url))
    try:
        return engine.images()
    finally:
        engine.close()
