"""The SQLite state database: containers, their state, exit codes, images.

Each write is one transaction, so a crash leaves either the old or the new
row, never half of one. WAL mode lets readers (``ps``, ``inspect``) run while
another process writes; ``busy_timeout`` makes writers queue instead of fail.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS exit_codes (
    id TEXT PRIMARY KEY,
    code INTEGER NOT NULL,
    time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS exec_sessions (
    id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    start_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS image_names (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL
);
"""
#: Stores made before images had several names kept the one name in ``images.name``: moved to ``image_names``
#: (``images.name`` now always holds the ID).
_MIGRATE_IMAGE_NAMES = """
BEGIN IMMEDIATE;
INSERT OR IGNORE INTO image_names (name, image_id) SELECT name, id FROM images WHERE name != id;
UPDATE images SET name = id WHERE name != id;
COMMIT;
"""

BUSY_TIMEOUT_MS = 30_000
#: Exit codes of removed containers are kept this long for late ``wait`` calls.
EXIT_CODE_RETENTION_S = 300


class Database:
    """Thread-safe access to one store's database."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                     timeout=BUSY_TIMEOUT_MS / 1000)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._conn.executescript(_SCHEMA)
            if self._conn.execute("SELECT 1 FROM images WHERE name != id LIMIT 1").fetchone():
                self._conn.executescript(_MIGRATE_IMAGE_NAMES)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # Containers.
    def add_container(self, ctr_id: str, name: str, config: dict[str, Any], state: dict[str, Any]) -> None:
        """Raises sqlite3.IntegrityError when the name or ID is taken."""
        self._write("INSERT INTO containers (id, name, config, state) VALUES (?, ?, ?, ?)",
                    (ctr_id, name, json.dumps(config), json.dumps(state)))

    def save_state(self, ctr_id: str, state: dict[str, Any]) -> bool:
        return self._write("UPDATE containers SET state = ? WHERE id = ?", (json.dumps(state), ctr_id)) == 1

    def save_config(self, ctr_id: str, config: dict[str, Any]) -> bool:
        """Only ``update`` changes a config after create (its limits)."""
        return self._write("UPDATE containers SET config = ? WHERE id = ?", (json.dumps(config), ctr_id)) == 1

    def rename_container(self, ctr_id: str, name: str, config: dict[str, Any]) -> bool:
        """``rename``: the name and the config that holds it, at once; False when another container has it
        (raises sqlite3.IntegrityError then, as ``add_container``)."""
        return self._write("UPDATE containers SET name = ?, config = ? WHERE id = ?",
                           (name, json.dumps(config), ctr_id)) == 1

    def get_state(self, ctr_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT state FROM containers WHERE id = ?", (ctr_id,))
        return json.loads(rows[0][0]) if rows else None

    def get_container(self, ctr_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        rows = self._read("SELECT config, state FROM containers WHERE id = ?", (ctr_id,))
        return (json.loads(rows[0][0]), json.loads(rows[0][1])) if rows else None

    def lookup_container(self, name_or_id: str) -> list[str]:
        """IDs matching a full name, a full ID, or an ID prefix."""
        rows = self._read("SELECT id FROM containers WHERE name = ? OR id = ?", (name_or_id, name_or_id))
        if rows:
            return [rows[0][0]]
        escaped = name_or_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [r[0] for r in self._read("SELECT id FROM containers WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",))]

    def all_containers(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(json.loads(c), json.loads(s)) for c, s in self._read("SELECT config, state FROM containers")]

    def remove_container(self, ctr_id: str) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM containers WHERE id = ?", (ctr_id,))
                self._conn.execute("DELETE FROM exec_sessions WHERE container_id = ?", (ctr_id,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # Exit codes outlive their containers for a while (libpod's exit-code table).
    def set_exit_code(self, ctr_id: str, code: int) -> None:
        now = time.time()
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO exit_codes (id, code, time) VALUES (?, ?, ?)",
                               (ctr_id, code, now))
            self._conn.execute("DELETE FROM exit_codes WHERE time < ? AND id NOT IN (SELECT id FROM containers)",
                               (now - EXIT_CODE_RETENTION_S,))

    def get_exit_code(self, ctr_id: str) -> int | None:
        rows = self._read("SELECT code FROM exit_codes WHERE id = ?", (ctr_id,))
        return int(rows[0][0]) if rows else None

    # Exec sessions.
    def add_exec_session(self, session_id: str, ctr_id: str, pid: int, start_time: int) -> None:
        self._write("INSERT INTO exec_sessions (id, container_id, pid, start_time) VALUES (?, ?, ?, ?)",
                    (session_id, ctr_id, pid, start_time))

    def remove_exec_session(self, session_id: str) -> None:
        self._write("DELETE FROM exec_sessions WHERE id = ?", (session_id,))

    def exec_sessions(self, ctr_id: str) -> list[tuple[str, int, int]]:
        return [(r[0], int(r[1]), int(r[2])) for r in
                self._read("SELECT id, pid, start_time FROM exec_sessions WHERE container_id = ?", (ctr_id,))]

    # Volumes (kernelext.storage.volumes).
    def add_volume(self, name: str, config: dict[str, Any]) -> None:
        """Raises sqlite3.IntegrityError when the name is taken."""
        self._write("INSERT INTO volumes (name, config) VALUES (?, ?)", (name, json.dumps(config)))

    def save_volume(self, name: str, config: dict[str, Any]) -> None:
        self._write("UPDATE volumes SET config = ? WHERE name = ?", (json.dumps(config), name))

    def get_volume(self, name: str) -> dict[str, Any] | None:
        rows = self._read("SELECT config FROM volumes WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def all_volumes(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, json.loads(config)) for name, config in self._read("SELECT name, config FROM volumes")]

    def remove_volume(self, name: str) -> None:
        self._write("DELETE FROM volumes WHERE name = ?", (name,))

    # Images: ``images`` holds each image once (by ID), ``image_names`` its names (none: dangling).
    def add_image(self, image_id: str, names: list[str], config: dict[str, Any]) -> None:
        """Record an image with its names (taken from any image that had them, as a pull of a moved tag does).

        Raises sqlite3.IntegrityError when the ID is recorded already."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("INSERT INTO images (id, name, config) VALUES (?, ?, ?)",
                                   (image_id, image_id, json.dumps(config)))
                self._conn.executemany("INSERT OR REPLACE INTO image_names (name, image_id) VALUES (?, ?)",
                                       [(name, image_id) for name in names])
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def image_by_name(self, name: str) -> str | None:
        rows = self._read("SELECT image_id FROM image_names WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def images_by_id_prefix(self, prefix: str) -> list[str]:
        """IDs equal to ``prefix`` or starting with it (``_`` and ``%`` taken literally)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [r[0] for r in self._read("SELECT id FROM images WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",))]

    def image_row(self, image_id: str) -> tuple[str, list[str], dict[str, Any]] | None:
        rows = self._read("SELECT config FROM images WHERE id = ?", (image_id,))
        return (image_id, self.image_names(image_id), json.loads(rows[0][0])) if rows else None

    def image_names(self, image_id: str) -> list[str]:
        return [r[0] for r in self._read("SELECT name FROM image_names WHERE image_id = ? ORDER BY rowid",
                                         (image_id,))]

    def all_images(self) -> list[tuple[str, list[str], dict[str, Any]]]:
        names: dict[str, list[str]] = {}
        for name, image_id in self._read("SELECT name, image_id FROM image_names ORDER BY rowid"):
            names.setdefault(image_id, []).append(name)
        return [(i, names.get(i, []), json.loads(c)) for i, c in self._read("SELECT id, config FROM images")]

    def tag_image(self, image_id: str, name: str) -> None:
        """Give the image ``name``, taken from whichever image had it."""
        self._write("INSERT OR REPLACE INTO image_names (name, image_id) VALUES (?, ?)", (name, image_id))

    def untag_image(self, image_id: str, name: str) -> bool:
        return self._write("DELETE FROM image_names WHERE name = ? AND image_id = ?", (name, image_id)) == 1

    def remove_image(self, image_id: str) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM image_names WHERE image_id = ?", (image_id,))
            self._conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
            self._conn.execute("COMMIT")

    def containers_using_image(self, image_id: str) -> list[str]:
        return [r[0] for r in self._read(
            "SELECT name FROM containers WHERE json_extract(config, '$.image_id') = ?", (image_id,))]
