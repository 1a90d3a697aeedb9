"""Reading and writing tar streams (ustar with PAX and GNU long-name extensions).

Our own codec rather than :mod:`tarfile`: it never looks names up through the
host's NSS (``tarfile`` calls ``pwd``/``grp`` to fill in user names), it hands
member data straight between file descriptors, and it costs a few
microseconds per member, which matters for copies of many small files.
"""

from __future__ import annotations

import bz2
import enum
import gzip
import io
import lzma
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable
from typing import BinaryIO, NamedTuple, cast

from kernelext.errors import CopyError

BLOCK = 512
NOT_AN_ARCHIVE = "source must be a (compressed) tar archive"
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_USTAR_MAGIC = b"ustar\x00"
_CHECKSUM_BLANK = b" " * 8
_MAX_OCTAL = {8: 0o7777777, 12: 0o77777777777}
_NAME_MAX, _PREFIX_MAX = 100, 155
_PAX_NAME = b"././@PaxHeader"
#: Member data above this size is copied in chunks rather than read whole.
CHUNK = 1 << 20
#: Long-name and PAX records larger than this are refused (they sit in memory).
MAX_EXTENDED = 1 << 20


class Kind(enum.Enum):
    """The member types kernelext copies, with their tar type flags."""

    FILE = b"0"
    HARDLINK = b"1"
    SYMLINK = b"2"
    CHAR = b"3"
    BLOCK = b"4"
    DIR = b"5"
    FIFO = b"6"


_KIND_OF_FLAG = {k.value: k for k in Kind} | {b"\x00": Kind.FILE, b"7": Kind.FILE}
_SKIPPED_FLAGS = frozenset({b"g", b"V"})  # global PAX header, volume label


class Meta(NamedTuple):
    """What a member carries besides its name: ``mode`` holds permission bits only.

    A NamedTuple, not a dataclass: one is built per file, and copies of many
    small files are measured in microseconds per file.
    """

    mode: int
    uid: int
    gid: int
    mtime: int
    size: int = 0
    rdev_major: int = 0
    rdev_minor: int = 0


class Member(NamedTuple):
    kind: Kind
    name: str
    meta: Meta
    link: str = ""  # symlink target or hard-link target (a member name)


# ------------------------------------------------------------------- writing
def _octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length += 1
    return str(length).encode() + body


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """ustar's prefix/name split of a long name, or None when it does not fit."""
    if len(name) <= _NAME_MAX:
        return b"", name
    cut = name.find(b"/", len(name) - _NAME_MAX - 1)
    while cut != -1 and cut <= _PREFIX_MAX:
        if 0 < len(name) - cut - 1 <= _NAME_MAX:
            return name[:cut], name[cut + 1:]
        cut = name.find(b"/", cut + 1)
    return None


def _block(name: bytes, prefix: bytes, flag: bytes, meta: Meta, link: bytes, size: int, uid: int, gid: int,
           mtime: int) -> bytes:
    header = _HEADER.pack(name, _octal(meta.mode & 0o7777, 8), _octal(uid, 8), _octal(gid, 8), _octal(size, 12),
                          _octal(mtime, 12), _CHECKSUM_BLANK, flag, link, _USTAR_MAGIC, b"00", b"", b"",
                          _octal(meta.rdev_major, 8), _octal(meta.rdev_minor, 8), prefix)
    return header[:148] + b"%06o\x00 " % sum(header) + header[156:]


def header(kind: Kind, name: bytes, meta: Meta, link: bytes = b"") -> bytes:
    """The header block(s) of one member; a PAX header goes first when a field does not fit."""
    size = meta.size if kind is Kind.FILE else 0
    pax: list[bytes] = []
    split = _split_name(name)
    if split is None:
        pax.append(_pax_record(b"path", name))
        split = b"", name[:_NAME_MAX]
    if len(link) > _NAME_MAX:
        pax.append(_pax_record(b"linkpath", link))
        link = link[:_NAME_MAX]
    uid, gid, mtime = meta.uid, meta.gid, meta.mtime
    if size > _MAX_OCTAL[12]:
        pax.append(_pax_record(b"size", b"%d" % size))
        size = 0
    if not 0 <= uid <= _MAX_OCTAL[8]:
        pax.append(_pax_record(b"uid", b"%d" % uid))
        uid = 0
    if not 0 <= gid <= _MAX_OCTAL[8]:
        pax.append(_pax_record(b"gid", b"%d" % gid))
        gid = 0
    if not 0 <= mtime <= _MAX_OCTAL[12]:
        pax.append(_pax_record(b"mtime", b"%d" % mtime))
        mtime = max(0, min(mtime, _MAX_OCTAL[12]))
    block = _block(split[1], split[0], kind.value, meta, link, size, uid, gid, mtime)
    if not pax:
        return block
    records = b"".join(pax)
    extended = _block(_PAX_NAME, b"", b"x", Meta(0o644, 0, 0, 0), b"", len(records), 0, 0, 0)
    return extended + records + padding(len(records)) + block


def padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


END_OF_ARCHIVE = bytes(2 * BLOCK)


# ------------------------------------------------------------------- reading
def _number(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256 for values that overflow octal
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[:1] == b"\xff" else value
    text = field.split(b"\x00", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise CopyError(f"invalid tar header: bad number {text!r}") from None


def _valid_checksum(block: bytes) -> bool:
    try:
        stored = int(block[148:156].split(b"\x00", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 256 + sum(block[156:])
    if stored == unsigned:
        return True
    high = sum(b for b in block[:148] if b > 127) + sum(b for b in block[156:] if b > 127)
    return stored == unsigned - 2 * high  # old tars summed signed chars


def _parse_pax(data: bytes) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space == -1:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise CopyError("invalid tar archive: bad PAX record") from None
        if length <= 0:
            raise CopyError("invalid tar archive: bad PAX record")
        key, _, value = data[space + 1:pos + length - 1].partition(b"=")
        records[key] = value
        pos += length
    return records


class TarReader:
    """Members of a tar stream, in order; :meth:`copy_data` moves a member's data."""

    #: Whether an archive of no members (its end blocks only) is valid: an image layer may be empty.
    empty_ok = False

    def __init__(self, stream: BinaryIO) -> None:
        self._f = stream
        self._remaining = 0  # data bytes of the current member not yet consumed
        self._pad = 0
        self._first = True

    def _read(self, size: int) -> bytes:
        try:
            data = self._f.read(size)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise CopyError(f"{NOT_AN_ARCHIVE}: {exc}" if self._first else f"corrupt archive: {exc}") from None
        if len(data) != size:
            if self._first:
                raise CopyError(NOT_AN_ARCHIVE)
            raise CopyError("unexpected end of tar archive")
        return data

    def _skip_rest(self) -> None:
        left = self._remaining + self._pad
        while left:
            left -= len(self._read(min(left, CHUNK)))
        self._remaining = self._pad = 0

    def __iter__(self) -> TarReader:
        return self

    def __next__(self) -> Member:
        self._skip_rest()
        overrides: dict[bytes, bytes] = {}
        while True:
            block = self._read(BLOCK)
            if block == bytes(BLOCK):
                if self._first and not self.empty_ok:
                    raise CopyError(NOT_AN_ARCHIVE)
                raise StopIteration
            if not _valid_checksum(block):
                raise CopyError(NOT_AN_ARCHIVE if self._first else "invalid tar header (bad checksum)")
            self._first = False
            fields = _HEADER.unpack(block)
            flag, size = fields[7], _number(fields[4])
            if flag in (b"x", b"L", b"K", b"g", b"V"):
                if size > MAX_EXTENDED:
                    raise CopyError("invalid tar archive: extended header too large")
                data = self._read(size)
                self._read(-size % BLOCK)
                if flag == b"x":
                    overrides.update(_parse_pax(data))
                elif flag == b"L":
                    overrides[b"path"] = data.split(b"\x00", 1)[0]
                elif flag == b"K":
                    overrides[b"linkpath"] = data.split(b"\x00", 1)[0]
                continue
            return self._member(fields, flag, size, overrides)

    def _member(self, fields: tuple[bytes, ...], flag: bytes, size: int, overrides: dict[bytes, bytes]) -> Member:
        name = fields[0].split(b"\x00", 1)[0]
        if fields[9] == _USTAR_MAGIC:  # GNU tar's old format keeps other data there
            prefix = fields[15].split(b"\x00", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        name = overrides.get(b"path", name)
        link = overrides.get(b"linkpath", fields[8].split(b"\x00", 1)[0])
        if b"size" in overrides:
            size = int(overrides[b"size"])
        kind = _KIND_OF_FLAG.get(flag)
        text = name.decode("utf-8", "surrogateescape")
        if kind is None:
            raise CopyError(f'unsupported tar entry "{text}" (type {flag.decode(errors="replace")!r})')
        uid = int(overrides[b"uid"]) if b"uid" in overrides else _number(fields[2])
        gid = int(overrides[b"gid"]) if b"gid" in overrides else _number(fields[3])
        mtime = int(float(overrides[b"mtime"])) if b"mtime" in overrides else _number(fields[5])
        if kind is not Kind.FILE:
            size = size if kind is Kind.HARDLINK else 0  # hard links carry no data in practice
        self._remaining, self._pad = size, -size % BLOCK
        meta = Meta(_number(fields[1]) & 0o7777, uid, gid, mtime, size if kind is Kind.FILE else 0,
                    _number(fields[13]), _number(fields[14]))
        return Member(kind, text, meta, link.decode("utf-8", "surrogateescape"))

    def copy_data(self, write: Callable[[bytes], object]) -> None:
        """Hand the current member's data to ``write`` (whole for small members, in chunks otherwise)."""
        left = self._remaining
        while left:
            chunk = self._read(min(left, CHUNK))
            write(chunk)
            left -= len(chunk)
        self._remaining = 0


# --------------------------------------------------------------- compression
class _Prefixed(io.RawIOBase):
    """``head`` followed by the rest of ``stream``: lets us sniff the first bytes of a pipe."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer: one copy of the archive fewer
            return int(readinto(view) or 0)
        data = self._stream.read(len(view))
        view[:len(data)] = data
        return len(data)


class _Zstd(io.RawIOBase):
    """zstd through the host's ``zstd`` tool (Python 3.11 has no zstd module); host data only."""

    def __init__(self, source: io.BufferedIOBase) -> None:
        zstd = shutil.which("zstd")
        if zstd is None:
            raise CopyError("zstd-compressed archives need the zstd tool on the host")
        self._proc = subprocess.Popen([zstd, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL)
        self._feeder = threading.Thread(target=self._feed, args=(source,), daemon=True)
        self._feeder.start()

    def _feed(self, source: io.BufferedIOBase) -> None:
        assert self._proc.stdin is not None
        try:
            while chunk := source.read(CHUNK):
                self._proc.stdin.write(chunk)
        except (BrokenPipeError, ValueError):
            pass
        finally:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        assert isinstance(self._proc.stdout, io.BufferedReader)
        return self._proc.stdout.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._proc.kill()
            self._proc.wait()
            self._feeder.join()
            assert self._proc.stdout is not None
            self._proc.stdout.close()
        super().close()


#: Leading bytes of the compressed formats ``cp -`` and ``put_archive`` accept.
GZIP, BZIP2, XZ, ZSTD = b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd"
_SNIFF = 6


def _decompressed(head: bytes, raw: io.BufferedReader) -> io.BufferedIOBase:
    """``raw`` decompressed as its first bytes ``head`` say (the caller closes the result)."""
    if head.startswith(GZIP):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head.startswith(BZIP2):
        return bz2.BZ2File(raw)
    if head.startswith(XZ):
        return lzma.LZMAFile(raw)
    if head.startswith(ZSTD):
        return io.BufferedReader(_Zstd(raw), CHUNK)
    return raw


def open_archive(stream: BinaryIO) -> BinaryIO:
    """A readable tar stream from ``stream``, decompressing gzip, bzip2, xz or zstd as detected."""
    head = b""
    while len(head) < _SNIFF:
        more = stream.read(_SNIFF - len(head))
        if not more:
            break
        head += more
    return cast(BinaryIO, _decompressed(head, io.BufferedReader(_Prefixed(head, stream), CHUNK)))
