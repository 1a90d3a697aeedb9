"""conmon's attach socket: a client for the container's stdio (docs/architecture.md §3).

The socket is SOCK_SEQPACKET; each packet from conmon starts with a stream
byte (1 stdin, 2 stdout, 3 stderr) followed by the payload. Whatever the
client writes goes to the container's stdin. It is dialled through
``/proc/self/fd/N`` of an O_PATH descriptor, so a long bundle path does not
hit the 108-byte ``sun_path`` limit.
"""

from __future__ import annotations

import enum
import os
import select
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from kernelext.errors import InvalidArgumentError

#: podman's default detach sequence (ctrl-p, ctrl-q).
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
ATTACH_BUFFER = 8193


class Stream(enum.IntEnum):
    STDIN = 1
    STDOUT = 2
    STDERR = 3


class Detached(Exception):
    """The user typed the detach key sequence."""


def parse_detach_keys(spec: str) -> bytes:
    """``ctrl-p,ctrl-q`` → b'\\x10\\x11'; a single character stands for itself; ``""`` disables."""
    if not spec:
        return b""
    keys = bytearray()
    for part in spec.split(","):
        if len(part) == 1:
            keys.append(ord(part))
        elif part.startswith("ctrl-") and len(part) == 6:
            char = part[5]
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
            elif char in "@[\\]^_":
                keys.append(ord(char) - ord("@"))
            elif char == ",":
                keys.append(0x1C)  # moby/term's mapping
            else:
                raise InvalidArgumentError(f"invalid detach keys: {spec!r}")
        else:
            raise InvalidArgumentError(f"invalid detach keys: {spec!r}")
    return bytes(keys)


class AttachStream:
    """What a front end streams a container's output from and sends its input up: ``recv`` gives packets read
    from ``sock``; a local attach socket and a remote engine's attach connection share the rest."""

    sock: socket.socket

    def recv(self) -> tuple[Stream, bytes] | None:
        raise NotImplementedError

    def packets(self) -> Iterator[tuple[Stream, bytes]]:
        while (packet := self.recv()) is not None:
            yield packet

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_stdin(self) -> None:
        """The end of input: a half-close, which conmon (or the service, on to conmon) takes as stdin's end."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class AttachSocket(AttachStream):
    """One connection to a container's attach socket."""

    def __init__(self, path: Path) -> None:
        dir_fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                self.sock.connect(f"/proc/self/fd/{dir_fd}")
            except OSError:
                self.sock.close()
                raise
        finally:
            os.close(dir_fd)

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self) -> tuple[Stream, bytes] | None:
        """The next packet, or None at end of stream (the container's stdio closed)."""
        while True:
            data = self.sock.recv(ATTACH_BUFFER)
            if not data:
                return None
            if len(data) > 1 and data[0] in (Stream.STDOUT, Stream.STDERR):
                return Stream(data[0]), data[1:]

    def close(self) -> None:
        """Close; a thread blocked reading this connection wakes up at end of stream."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more
        self.sock.close()


class DetachFilter:
    """Client-side detection of the detach sequence in typed input.

    A prefix of the sequence is held back until the next key decides whether
    it completes the sequence (then :class:`Detached`) or not (then it is sent).
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        if not self.keys:
            return data
        out = bytearray()
        for byte in data:
            candidate = self._held + bytes([byte])
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    raise Detached()
                self._held = candidate
            else:
                out += candidate
                self._held = b""
        return bytes(out)


def pump(conn: AttachSocket, on_output: Callable[[Stream, bytes], None], stdin: BinaryIO | None = None,
         detach_keys: bytes = b"") -> None:
    """Copy output to ``on_output`` and ``stdin`` to the container until the stream ends.

    Raises :class:`Detached` when the detach sequence is typed on ``stdin``.
    """
    filt = DetachFilter(detach_keys)
    stdin_fd = stdin.fileno() if stdin is not None else -1
    while True:
        fds = [conn.fileno()] + ([stdin_fd] if stdin_fd >= 0 else [])
        readable, _, _ = select.select(fds, [], [])
        if stdin_fd in readable:
            data = os.read(stdin_fd, ATTACH_BUFFER - 1)
            if not data:
                conn.close_stdin()
                stdin_fd = -1
            else:
                data = filt.feed(data)
                if data:
                    conn.send(data)
        if conn.fileno() in readable:
            packet = conn.recv()
            if packet is None:
                return
            on_output(*packet)
