"""Directories of removed containers, deleted off the remover's path.

Deleting a container's bundle and layer is a few dozen unlinks and rmdirs:
~10 ms on a disk mounted with ``discard``, a tenth of a whole container's life
here. ``remove`` renames them into the store's trash instead (one rename each:
for everyone else they are gone at once) and a background thread deletes
them; ``Runtime.close()`` waits for it. What a process left there when it ended
first is deleted by the next ``Runtime`` of the store.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from kernelext.rootless import Namespace

TRASH_DIR = "trash"


class Trash:
    """One store's trash: ``put`` a directory in, a thread deletes it."""

    def __init__(self, root: Path, namespace: Namespace) -> None:
        self.directory = root / TRASH_DIR
        self._namespace = namespace
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if self.directory.is_dir() and os.listdir(self.directory):
            self._start()  # left by a process that ended before its deleter

    def put(self, path: Path) -> None:
        """Take ``path`` away now; delete it soon."""
        self.directory.mkdir(exist_ok=True)
        try:
            os.rename(path, self.directory / f"{path.name}.{secrets.token_hex(4)}")
        except FileNotFoundError:
            return
        except OSError:  # elsewhere than the store's file system, or not movable: delete it here and now
            self._namespace.remove_tree(path)
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
        tried: set[str] = set()  # what would not go (e.g. not this user's to delete) is left, not retried
        while True:
            with self._lock:  # decided under the lock: a put() meanwhile either is listed or starts a new thread
                try:
                    entries = set(os.listdir(self.directory)) - tried
                except FileNotFoundError:
                    entries = set()
                if not entries:
                    self._thread = None
                    return
            for name in entries:
                self._namespace.remove_tree(self.directory / name)
            tried |= entries
