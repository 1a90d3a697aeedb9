"""``logs --tail`` and ``--since`` on a big log read only what they show (issue 15)."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import pytest

from kernelext.core import logs
from kernelext.core.logs import LogLine, read_log

from conftest import Store

BIG = 200 << 20  # bytes of log written before the last lines
READ_BUDGET = 4 << 20  # what a tail or since may read of it


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e9):09d}Z"


def _bytes_read() -> int:
    """This process's bytes read through read(2) and friends (``/proc/self/io`` ``rchar``)."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"])


def _forward(path: Path, **window: float) -> list[LogLine]:
    """The reference: every record from the start."""
    assembler = logs._Assembler()
    lines = []
    with path.open("rb") as f:
        for record in f:
            line = assembler.feed(record)
            if line is not None and logs._in_window(line, window.get("since"), window.get("until")):
                lines.append(line)
    return lines + [line for line in assembler.flush()
                    if logs._in_window(line, window.get("since"), window.get("until"))]


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """~200 MB of k8s-file records, one every millisecond from an hour ago, with partial lines."""
    path = tmp_path_factory.mktemp("biglog") / "ctr.log"
    start = time.time() - 3600
    payload = b"x" * 200
    with path.open("wb") as f:
        n = 0
        while f.tell() < BIG:
            block = []
            for _ in range(4096):
                stamp = _stamp(start + n / 1000).encode()
                if n % 11 == 0:
                    block.append(stamp + b" stdout P part-" + str(n).encode() + b"\n")
                block.append(stamp + (b" stderr F " if n % 3 == 0 else b" stdout F ") + b"%d " % n + payload + b"\n")
                n += 1
            f.write(b"".join(block))
    return path, start


def test_tail_reads_only_the_end(big_log: tuple[Path, float]) -> None:
    path, _ = big_log
    before = _bytes_read()
    last = read_log(path, tail=3)
    assert _bytes_read() - before < READ_BUDGET
    with path.open("rb") as f:  # the reference: the last records, read from the end
        f.seek(-100_000, 2)
        records = f.read().split(b"\n")[1:-1]
    expected = deque((line for r in records if (line := logs._Assembler().feed(r + b"\n"))), maxlen=3)
    assert [line.data for line in last] == [line.data for line in expected]
    assert len(last) == 3


def test_since_searches_instead_of_scanning(big_log: tuple[Path, float]) -> None:
    path, _ = big_log
    with path.open("rb") as f:  # a time about 2000 records before the end
        f.seek(-(2000 * 230), 2)
        f.readline()
        since = logs._record_time(f.readline())
    assert since is not None
    before = _bytes_read()
    found = read_log(path, since=since)
    assert _bytes_read() - before < READ_BUDGET
    assert 1000 < len(found) < 3000
    assert all(line.time >= since for line in found) and found[0].time < since + 0.01
    assert found[-1] == read_log(path, tail=1)[0]


def test_windows_agree_with_a_full_read(tmp_path: Path) -> None:
    """Tail, since and until on a small log give what reading every record gives."""
    path = tmp_path / "small.log"
    start = time.time() - 100
    with path.open("wb") as f:
        for n in range(3000):
            stamp = _stamp(start + n / 100).encode()
            if n % 7 == 0:
                f.write(stamp + b" stdout P head-%d-\n" % n)
            f.write(stamp + (b" stderr" if n % 5 == 0 else b" stdout") + b" F line%d\n" % n)
        f.write(_stamp(start + 31).encode() + b" stdout P trailing")
    everything = _forward(path)
    for tail in (0, 1, 3, 250):
        assert read_log(path, tail=tail) == everything[len(everything) - tail:]
    for since in (start - 1, start + 3.333, start + 29.99, start + 60):
        assert read_log(path, since=since) == _forward(path, since=since)
        assert read_log(path, since=since, until=since + 2) == _forward(path, since=since, until=since + 2)


def test_cli_logs_tail_of_a_big_log(store: Store, big_log: tuple[Path, float]) -> None:
    ctr = store.runtime.run("busybox", ["sh", "-c", "echo one; echo two; echo three"], name="talker")
    assert ctr.wait(timeout=30) == 0
    own = ctr.log_path.read_bytes()
    with ctr.log_path.open("wb") as out, big_log[0].open("rb") as src:
        while chunk := src.read(1 << 22):
            out.write(chunk)
        out.write(own)
    proc = store.cli("logs", "--tail", "3", "talker")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["one", "two", "three"]
