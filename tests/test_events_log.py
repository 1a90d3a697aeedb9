"""The events log in podman's format, moved and bounded by containers.conf as podman's file backend is
(issue 17: podman's 090-events tests 8 and 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernelext.core import podmanconf
from kernelext.core.events import Event, EventLog

from conftest import Store, needs_root

#: A line as podman v4 writes it (its own test's filler line).
PODMAN_LINE = ('{"Name":"busybox","Status":"pull","Time":"2022-04-06T11:26:42.7236679%02d+02:00","Type":"image",'
               '"Attributes":null}\n')


def _fill(path: Path, count: int = 100) -> None:
    path.write_text("".join(PODMAN_LINE % i for i in range(count)))


# ------------------------------------------------------------ pure logic
def test_podmans_lines_read_and_written() -> None:
    event = Event.from_json(PODMAN_LINE % 7)
    assert (event.type, event.status, event.name, event.id, event.attributes) == ("image", "pull", "busybox", "", {})
    assert event.time == pytest.approx(1649237202.723668, abs=1e-6)  # 09:26:42.7236679 UTC
    written = json.loads(Event(1649237202.5, "container", "died", "abc", "web", "img", {"k": "v"}).to_json())
    assert written["Status"] == "died" and written["ID"] == "abc" and written["Attributes"] == {"k": "v"}
    assert Event.from_json(json.dumps(written)).time == 1649237202.5
    assert "ID" not in json.loads(Event(1.0, "system", "log-rotation", "", "/x").to_json())  # podman's omitempty
    # kernelext's own earlier lines stay readable
    old = '{"time": 5.0, "type": "container", "status": "start", "id": "i", "name": "n", "image": "", "attributes": {}}'
    assert Event.from_json(old).status == "start"


def test_rotation_keeps_the_newer_half(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    _fill(path)
    size = path.stat().st_size
    log = EventLog(path, max_size=size // 2)
    log.emit("remove", "c1", "web")
    events = log.read()
    # The middle falls on a line start: that line goes whole (podman drops the line the cut lands in).
    assert [e.status for e in events] == ["pull"] * 49 + ["log-rotation", "remove"]
    assert (events[-2].type, events[-2].name) == ("system", str(path))
    assert not EventLog(tmp_path / "absent.log", max_size=10).read()


def test_containers_conf_moves_and_limits_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "containers.conf"
    conf.write_text(f'[engine]\nevents_logfile_path = "{tmp_path}/ev.log"\nevents_logfile_max_size = "1kb"\n')
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    assert podmanconf.events_log(Path("/default")) == (tmp_path / "ev.log", 1000)
    conf.write_text("[engine]\nevents_logfile_max_size = 4750\n")
    assert podmanconf.events_log(Path("/default")) == (Path("/default"), 4750)
    conf.write_text("")
    assert podmanconf.events_log(Path("/default")) == (Path("/default"), 0)


# ------------------------------------------------------------ end to end
@needs_root
def test_cli_writes_and_rotates_the_configured_log(store: Store, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    events_file = tmp_path / "events.txt"
    conf = tmp_path / "containers.conf"
    conf.write_text(f'[engine]\nevents_logger = "file"\nevents_logfile_path = "{events_file}"\n')
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    done = store.cli("events", "--stream=false")  # an absent log is no events, at once
    assert (done.returncode, done.stdout) == (0, "")
    _fill(events_file)
    before = events_file.read_text()
    assert store.cli("run", "--rm", "--name", "unbounded", "busybox", "true").returncode == 0
    after = events_file.read_text()
    assert after.startswith(before) and '"Name":"unbounded"' in after  # podman's keys, nothing rotated

    _fill(events_file)
    conf.write_text(f'[engine]\nevents_logfile_path = "{events_file}"\nevents_logfile_max_size = 4750\n')
    monkeypatch.delenv("CONTAINERS_CONF")
    created = store.cli("create", "busybox", "true")  # recorded in the store's own log
    assert created.returncode == 0, created.stderr
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    assert store.cli("rm", created.stdout.strip()).returncode == 0
    lines = events_file.read_text().splitlines()
    assert len(lines) == 51 and '"Status":"log-rotation"' in lines[-2] and '"Status":"remove"' in lines[-1]
    shown = store.cli("events", "--stream=false", "--since=2022-03-06T11:26:42.723667984+02:00").stdout.splitlines()
    assert len(shown) == 51 and shown[-2].endswith(f" system log-rotation {events_file}")
    assert shown[0].endswith(" image pull  busybox")  # podman's image line: no ID here, then the name
