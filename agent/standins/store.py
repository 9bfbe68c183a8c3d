"""The Coder stand-in's state in SQLite: tasks, the app-status history, one snapshot per task.

SQLite so that a restart of the stand-in keeps what it received (the demo and the tests read the
snapshot back after the "workspace" stopped). One connection, used from the event loop thread only.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    app_slugs TEXT NOT NULL,
    agentapi_url TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS app_statuses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    app_slug TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL,
    uri TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    task_id TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    stored_at TEXT NOT NULL
);
"""


def now_rfc3339() -> str:
    """The current UTC time, RFC 3339 with microseconds."""
    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction // 1000:06d}Z"


@dataclass(frozen=True)
class Task:
    """A task as the stand-in knows it."""

    id: str
    owner: str
    name: str
    status: str
    app_slugs: tuple[str, ...]
    agentapi_url: str


class Store:
    """Tasks, statuses and snapshots, persisted in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path))
        self._db.row_factory = sqlite3.Row
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def ensure_task(self, task: Task) -> None:
        """Create the task, or refresh its configuration keeping its status."""
        self._db.execute(
            "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "owner=excluded.owner, name=excluded.name, app_slugs=excluded.app_slugs, "
            "agentapi_url=excluded.agentapi_url",
            (
                task.id,
                task.owner,
                task.name,
                task.status,
                json.dumps(task.app_slugs),
                task.agentapi_url,
            ),
        )
        self._db.commit()

    def task(self, task_id: str) -> Task | None:
        """The task with this id."""
        row = self._db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            return None
        return Task(
            row["id"],
            row["owner"],
            row["name"],
            row["status"],
            tuple(json.loads(row["app_slugs"])),
            row["agentapi_url"],
        )

    def tasks(self) -> list[Task]:
        """Every task."""
        ids = [r["id"] for r in self._db.execute("SELECT id FROM tasks ORDER BY id")]
        return [t for i in ids if (t := self.task(i)) is not None]

    def set_task_status(self, task_id: str, status: str) -> None:
        """Change a task's status (active, paused, ...)."""
        self._db.execute("UPDATE tasks SET status = ? WHERE id = ?", (status, task_id))
        self._db.commit()

    def add_status(self, task_id: str, slug: str, state: str, message: str, uri: str) -> None:
        """Store one app-status row (no de-duplication, like Coder)."""
        self._db.execute(
            "INSERT INTO app_statuses (task_id, app_slug, state, message, uri, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (task_id, slug, state, message, uri, now_rfc3339()),
        )
        self._db.commit()

    def statuses(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """The app-status history, oldest first."""
        query = "SELECT * FROM app_statuses"
        args: tuple[str, ...] = ()
        if task_id is not None:
            query += " WHERE task_id = ?"
            args = (task_id,)
        rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [dict(row) for row in rows]

    def put_snapshot(self, task_id: str, body: bytes) -> None:
        """Store a snapshot, replacing the previous one."""
        self._db.execute(
            "INSERT INTO snapshots VALUES (?, ?, ?) ON CONFLICT(task_id) DO UPDATE SET "
            "body=excluded.body, stored_at=excluded.stored_at",
            (task_id, body, now_rfc3339()),
        )
        self._db.commit()

    def snapshot(self, task_id: str) -> tuple[bytes, str] | None:
        """The stored snapshot body and when it was stored."""
        row = self._db.execute(
            "SELECT body, stored_at FROM snapshots WHERE task_id = ?", (task_id,)
        ).fetchone()
        return None if row is None else (bytes(row["body"]), str(row["stored_at"]))
