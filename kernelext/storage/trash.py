"""Directories of removed containers, deleted off the remover's path.

Deleting a container's bundle and layer is a few dozen unlinks and rmdirs:
~10 ms on a disk mounted with ``discard``, a tenth of a whole container's life
here. ``remove`` renames them into the store's trash instead (one rename each:
for everyone else they are gone at once) and a background thread deletes
them; ``Runtime.close()`` waits for it. What a process left there when it ended
first is deleted by the next ``Runtime`` of the store.

The thread outlives any one failure: an entry that will not go is logged in
one line and left, and the thread goes on with the next. A failure with what
this process put in is a warning; with what an earlier process left, a debug
line (it is not the business of whichever command happens to open the store).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path

from kernelext.rootless import Namespace

TRASH_DIR = "trash"
log = logging.getLogger("kernelext")


class Trash:
    """One store's trash: ``put`` a directory in, a thread deletes it."""

    def __init__(self, root: Path, namespace: Namespace) -> None:
        self.directory = root / TRASH_DIR
        self._namespace = namespace
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ours: set[str] = set()  # entries this process put in
        self._tried: set[str] = set()  # what would not go (e.g. not this user's to delete) is left, not retried
        if self.directory.is_dir() and os.listdir(self.directory):
            self._start()  # left by a process that ended before its deleter

    def put(self, path: Path) -> None:
        """Take ``path`` away now; delete it soon."""
        self.directory.mkdir(exist_ok=True)
        entry = f"{path.name}.{secrets.token_hex(4)}"
        with self._lock:
            self._ours.add(entry)  # before it is there: the thread may see it at once
        try:
            os.rename(path, self.directory / entry)
        except OSError as exc:
            with self._lock:
                self._ours.discard(entry)
            if not isinstance(exc, FileNotFoundError):  # elsewhere than the store's file system, or not movable
                self._namespace.remove_tree(path)  # deleted here and now
            return
        self._start()

    def close(self) -> None:
        """Wait until what was put in is deleted."""
        thread = self._thread
        if thread is not None:
            thread.join()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._empty, name="kernelext-trash", daemon=True)
                self._thread.start()

    def _empty(self) -> None:
        while True:
            with self._lock:  # decided under the lock: a put() meanwhile either is listed or starts a new thread
                try:
                    entries = set(os.listdir(self.directory)) - self._tried
                except OSError:  # none yet, or unreadable: nothing this thread can do
                    entries = set()
                if not entries:
                    self._thread = None
                    return
                self._tried |= entries
            for name in entries:
                self._delete(name)

    def _delete(self, name: str) -> None:
        try:
            self._namespace.remove_tree(self.directory / name)
        except Exception as exc:  # noqa: BLE001 - one entry that will not go must not stop the others
            with self._lock:
                ours = name in self._ours
            log.log(logging.WARNING if ours else logging.DEBUG, "deleting %s from the store's trash: %s",
                    name, exc)
        with self._lock:
            self._ours.discard(name)
            if not os.path.lexists(self.directory / name):
                self._tried.discard(name)  # only what is left is remembered
