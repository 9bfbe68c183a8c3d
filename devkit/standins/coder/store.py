"""The Coder stand-in's state in SQLite: tasks, the app-status history, one snapshot per task.

SQLite so that a restart of the stand-in keeps what it received, as Coder's database does: the
demo and the tests read a snapshot back after the "workspace" stopped. The tables mirror what
Coder keeps: statuses are a history (every call is a row, never de-duplicated), a task has at most
one snapshot (an upload replaces it), and a task carries its own status (active, paused, ...).

One connection, used from the thread that runs the event loop. Every call is one short local
transaction on a loopback dev tool, so it runs inline rather than in a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypedDict

# The statuses a Coder task can have. `active` reads logs live from AgentAPI, `paused`,
# `pending` and `initializing` read the stored snapshot, `error` and `unknown` refuse (409).
TASK_STATUSES = ("active", "paused", "pending", "initializing", "error", "unknown")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    app_slugs TEXT NOT NULL,
    agentapi_url TEXT NOT NULL,
    other_workspace INTEGER NOT NULL DEFAULT 0
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
CREATE INDEX IF NOT EXISTS app_statuses_by_task ON app_statuses (task_id, seq);
CREATE TABLE IF NOT EXISTS snapshots (
    task_id TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    stored_at TEXT NOT NULL
);
"""


def now_rfc3339(ns: int | None = None) -> str:
    """A UTC time as Go's RFC3339Nano writes it: microseconds (Coder's), no trailing zeros."""
    stamp = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(stamp, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    micros = f"{fraction // 1000:06d}".rstrip("0")
    return f"{text}.{micros}Z" if micros else f"{text}Z"


@dataclass(frozen=True)
class Task:
    """A task as the stand-in knows it.

    `owner` is the user name in `/api/v2/tasks/{user}/...`; `app_slugs` are the `coder_app`
    slugs of this workspace's agent that report for the task (empty: any slug, for a stand-in
    that should accept whatever slug the user configured); `other_workspace` marks a task
    that exists on the server but belongs to another workspace (its snapshot route answers 404).
    Raises ValueError for an id that is not a UUID or an unknown status.
    """

    id: str
    owner: str
    name: str
    status: str = "active"
    app_slugs: tuple[str, ...] = ("agent",)
    agentapi_url: str = "http://localhost:3284"
    other_workspace: bool = False

    def has_app(self, slug: str) -> bool:
        """Whether `slug` names an app that reports for this task."""
        return not self.app_slugs or slug in self.app_slugs

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", str(uuid.UUID(self.id)))
        object.__setattr__(self, "app_slugs", tuple(self.app_slugs))
        if self.status not in TASK_STATUSES:
            raise ValueError(
                f"task status {self.status!r} is not one of {', '.join(TASK_STATUSES)}"
            )


class StatusRow(TypedDict):
    """One stored app status; `state` is the wire word (`failure`, not `failed`)."""

    seq: int
    task_id: str
    app_slug: str
    state: str
    message: str
    uri: str
    created_at: str


class StoredSnapshot(NamedTuple):
    """The last snapshot body exactly as uploaded, and when it was stored."""

    body: bytes
    stored_at: str


class Store:
    """Tasks, statuses and snapshots, persisted in one SQLite file."""

    def __init__(self, path: Path | str, *, clock: Callable[[], str] = now_rfc3339) -> None:
        self._clock = clock
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()

    def ensure_task(self, task: Task) -> None:
        """Create the task, or refresh its configuration keeping its stored status.

        The status is state, not configuration: a task paused before a restart stays paused.
        """
        self._db.execute(
            "INSERT INTO tasks (id, owner, name, status, app_slugs, agentapi_url, other_workspace)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET owner=excluded.owner,"
            " name=excluded.name, app_slugs=excluded.app_slugs,"
            " agentapi_url=excluded.agentapi_url, other_workspace=excluded.other_workspace",
            (
                task.id,
                task.owner,
                task.name,
                task.status,
                json.dumps(task.app_slugs),
                task.agentapi_url,
                int(task.other_workspace),
            ),
        )

    def task(self, task_id: str) -> Task | None:
        """The task with this (canonical, lower-case) id."""
        row = self._db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else _task(row)

    def tasks(self) -> list[Task]:
        """Every task, in the order they were first configured."""
        return [_task(row) for row in self._db.execute("SELECT * FROM tasks ORDER BY rowid")]

    def set_task_status(self, task_id: str, status: str) -> bool:
        """Change a task's status; False when there is no such task. ValueError for a bad status."""
        if status not in TASK_STATUSES:
            raise ValueError(f"task status {status!r} is not one of {', '.join(TASK_STATUSES)}")
        cursor = self._db.execute("UPDATE tasks SET status = ? WHERE id = ?", (status, task_id))
        return cursor.rowcount > 0

    def add_status(self, task_id: str, slug: str, state: str, message: str, uri: str) -> None:
        """Store one app-status row (no de-duplication, like Coder)."""
        self._db.execute(
            "INSERT INTO app_statuses (task_id, app_slug, state, message, uri, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (task_id, slug, state, message, uri, self._clock()),
        )

    def statuses(self, task_id: str | None = None) -> list[StatusRow]:
        """The app-status history, oldest first; one task's when `task_id` is given."""
        if task_id is None:
            rows = self._db.execute("SELECT * FROM app_statuses ORDER BY seq")
        else:
            rows = self._db.execute(
                "SELECT * FROM app_statuses WHERE task_id = ? ORDER BY seq", (task_id,)
            )
        return [_status(row) for row in rows]

    def latest_status(self, task_id: str) -> StatusRow | None:
        """The task's newest app status, which is what Coder shows as its current state."""
        row = self._db.execute(
            "SELECT * FROM app_statuses WHERE task_id = ? ORDER BY seq DESC LIMIT 1", (task_id,)
        ).fetchone()
        return None if row is None else _status(row)

    def put_snapshot(self, task_id: str, body: bytes) -> None:
        """Store a snapshot body, replacing the previous one."""
        self._db.execute(
            "INSERT INTO snapshots (task_id, body, stored_at) VALUES (?, ?, ?)"
            " ON CONFLICT(task_id) DO UPDATE SET body=excluded.body, stored_at=excluded.stored_at",
            (task_id, body, self._clock()),
        )

    def snapshot(self, task_id: str) -> StoredSnapshot | None:
        """The stored snapshot body and when it was stored, or None."""
        row = self._db.execute(
            "SELECT body, stored_at FROM snapshots WHERE task_id = ?", (task_id,)
        ).fetchone()
        return None if row is None else StoredSnapshot(bytes(row["body"]), str(row["stored_at"]))


def _task(row: sqlite3.Row) -> Task:
    return Task(
        id=row["id"],
        owner=row["owner"],
        name=row["name"],
        status=row["status"],
        app_slugs=tuple(json.loads(row["app_slugs"])),
        agentapi_url=row["agentapi_url"],
        other_workspace=bool(row["other_workspace"]),
    )


def _status(row: sqlite3.Row) -> StatusRow:
    return StatusRow(
        seq=int(row["seq"]),
        task_id=str(row["task_id"]),
        app_slug=str(row["app_slug"]),
        state=str(row["state"]),
        message=str(row["message"]),
        uri=str(row["uri"]),
        created_at=str(row["created_at"]),
    )
