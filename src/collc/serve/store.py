"""The service's durable state: SQLite under ``--state DIR`` (jobs, cached results) and the offloaded
job states beside it.

A job is written (and committed) before the service answers 202, so a ``kill -9`` loses no accepted
job: on restart every job that was queued, running or preempted is queued again. A preempted job whose
state was offloaded resumes from that file; one whose state was only in memory starts over. Results are
stored by cache key, so completed jobs keep their results across restarts and identical requests reuse
them. A request identical to a job not yet over gets a job of its own that *follows* that twin: every
change of the twin is written to its followers too, until the followers are over. SQLite runs in WAL
mode with one connection guarded by a lock (the server's threads share it).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from collc.serve.steps import OUTPUT_PLACEHOLDER

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    spec TEXT NOT NULL,
    gpus INTEGER NOT NULL,
    state TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0,
    level INTEGER NOT NULL DEFAULT 0,
    preemptions INTEGER NOT NULL DEFAULT 0,
    cached INTEGER NOT NULL DEFAULT 0,
    submitted REAL NOT NULL,
    finished REAL,
    error TEXT,
    exit_code INTEGER,
    seq INTEGER NOT NULL,
    follows TEXT
);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs (key, state);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    xml TEXT NOT NULL,
    report TEXT NOT NULL,
    text TEXT NOT NULL,
    created REAL NOT NULL
);
"""

#: states of a job that is not over: queued again after a restart
ACTIVE = ("queued", "running", "preempted")
#: states of a job that is over
FINAL = ("done", "failed", "cancelled")


class StoredResult(NamedTuple):
    """A compiled schedule: the XML, the JSON report and the printed report."""

    xml: str
    report: str  # with OUTPUT_PLACEHOLDER for the file name
    text: str

    def named(self, output: str) -> StoredResult:
        """The result with its reports naming ``output``."""
        quoted = json.dumps(output)[1:-1]
        return StoredResult(
            self.xml,
            self.report.replace(OUTPUT_PLACEHOLDER, quoted),
            self.text.replace(OUTPUT_PLACEHOLDER, output),
        )


@dataclass(frozen=True)
class JobRow:
    """A job as stored."""

    id: str
    key: str
    spec: dict[str, object]
    gpus: int
    state: str
    stage: str
    progress: float
    level: int
    preemptions: int
    cached: bool
    submitted: float
    finished: float | None
    error: str | None
    exit_code: int | None
    follows: str | None = None  # the twin whose compile this job shares, while both are not over

    def status(self) -> dict[str, object]:
        """The job's status as ``GET /v1/jobs/ID`` returns it."""
        return {
            "id": self.id,
            "state": self.state,
            "stage": self.stage,
            "progress": round(self.progress, 3),
            "level": self.level,
            "preemptions": self.preemptions,
            "cached": self.cached,
            "gpus": self.gpus,
            "submitted": self.submitted,
            "finished": self.finished,
            "error": self.error,
            "exit_code": self.exit_code,
        }


class Store:
    """Jobs and results in ``DIR/collc-serve.sqlite``; offloaded states in ``DIR/states/``."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.states = directory / "states"
        self.states.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(directory / "collc-serve.sqlite", check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            _add_follows(self._db)
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, row: sqlite3.Row | None) -> JobRow | None:
        if row is None:
            return None
        values = dict(row)
        values.pop("seq")
        values["spec"] = json.loads(values["spec"])
        values["cached"] = bool(values["cached"])
        return JobRow(**values)

    def add_job(
        self,
        key: str,
        spec: dict[str, object],
        gpus: int,
        *,
        cached: bool = False,
        twin: JobRow | None = None,
    ) -> JobRow:
        """A new job, committed before it is acknowledged. ``cached`` jobs are done on arrival; one with
        a ``twin`` (an identical job not yet over) starts where the twin is and follows it (:meth:`update`),
        so that each request keeps its own id and ``output`` while the compile runs once."""
        now = time.time()
        job_id = uuid.uuid4().hex[:16]
        values = _first_values(now, cached, twin)
        columns = ", ".join(values)
        with self._lock:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            self._db.execute(
                f"INSERT INTO jobs (id, key, spec, gpus, cached, submitted, seq, {columns})"
                f" VALUES (?, ?, ?, ?, ?, ?, ?{', ?' * len(values)})",
                (job_id, key, json.dumps(spec), gpus, int(cached), now, seq, *values.values()),
            )
            self._db.commit()
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: str) -> JobRow | None:
        with self._lock:
            return self._row(self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def active_with_key(self, key: str) -> JobRow | None:
        """The job not yet over for the same request (not a follower): a new identical request follows it."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE key = ? AND state IN (?, ?, ?) AND follows IS NULL"
                " ORDER BY seq LIMIT 1",
                (key, *ACTIVE),
            ).fetchone()
        return self._row(row)

    def active_jobs(self) -> list[JobRow]:
        """Jobs to queue again after a restart, in the order they were submitted (not their followers,
        which follow them again)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE state IN (?, ?, ?) AND follows IS NULL ORDER BY seq", ACTIVE
            ).fetchall()
        return [job for job in map(self._row, rows) if job is not None]

    def update(self, job_id: str, **values: object) -> None:
        """Set columns of a job and of the jobs that follow it (state, stage, progress, level, ...)."""
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._lock:
            self._db.execute(
                f"UPDATE jobs SET {columns} WHERE id = ? OR follows = ?", (*values.values(), job_id, job_id)
            )
            self._db.commit()

    def finish(self, job_id: str, state: str, *, error: str | None = None, exit_code: int = 0) -> None:
        """Mark a job over (``done``, ``failed`` or ``cancelled``), and its followers with it; only a done
        job shows full progress. A job over follows nothing: a follower cancelled alone keeps its state."""
        done = {"progress": 1.0, "stage": "done"} if state == "done" else {}
        now = time.time()
        self.update(job_id, state=state, finished=now, error=error, exit_code=exit_code, follows=None, **done)

    def put_result(self, key: str, result: StoredResult) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO results (key, xml, report, text, created) VALUES (?, ?, ?, ?, ?)",
                (key, result.xml, result.report, result.text, time.time()),
            )
            self._db.commit()

    def result(self, key: str) -> StoredResult | None:
        """The result cached for ``key``."""
        with self._lock:
            row = self._db.execute("SELECT xml, report, text FROM results WHERE key = ?", (key,)).fetchone()
        return StoredResult(row["xml"], row["report"], row["text"]) if row else None

    def counts(self) -> dict[str, int]:
        """Jobs per state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {row[0]: row[1] for row in rows}

    # offloaded job states: pickled compile states of preempted jobs, beyond the memory budget

    def state_path(self, job_id: str) -> Path:
        return self.states / f"{job_id}.pickle"

    def offload(self, job_id: str, blob: bytes) -> None:
        """Write a preempted job's state to disk (atomically: a killed write leaves no half file)."""
        path = self.state_path(job_id)
        temporary = path.with_suffix(".partial")
        temporary.write_bytes(blob)
        temporary.replace(path)

    def reload(self, job_id: str) -> bytes | None:
        """An offloaded state, removed from disk as it is read back (None if there is none)."""
        path = self.state_path(job_id)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        path.unlink()
        return blob

    def drop_state(self, job_id: str) -> None:
        self.state_path(job_id).unlink(missing_ok=True)


def _add_follows(db: sqlite3.Connection) -> None:
    """Give a database from before coalesced jobs had ids of their own the ``follows`` column."""
    if "follows" not in {row[1] for row in db.execute("PRAGMA table_info(jobs)")}:
        db.execute("ALTER TABLE jobs ADD COLUMN follows TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS jobs_follows ON jobs (follows)")


def _first_values(now: float, cached: bool, twin: JobRow | None) -> dict[str, object]:
    """The columns a new job starts with: queued, done (a cache hit) or where its twin is."""
    if cached:
        return {"state": "done", "stage": "done", "progress": 1.0, "finished": now, "exit_code": 0}
    if twin is not None:
        return {
            "state": twin.state,
            "stage": twin.stage,
            "progress": twin.progress,
            "level": twin.level,
            "preemptions": twin.preemptions,
            "follows": twin.id,
        }
    return {"state": "queued"}
