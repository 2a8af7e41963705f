"""The service's SQLite store: jobs that follow a twin's compile, and databases of earlier versions."""

from __future__ import annotations

import sqlite3

from collc.serve.store import Store


def test_a_follower_has_its_twins_progress_until_either_is_over(tmp_path):
    store = Store(tmp_path)
    twin = store.add_job("key", {"output": "a.xml"}, 4)
    store.update(twin.id, state="running", stage="lower", progress=0.1)
    follower = store.add_job("key", {"output": "b.xml"}, 4, twin=store.job(twin.id))
    cancelled = store.add_job("key", {"output": "c.xml"}, 4, twin=store.job(twin.id))
    assert (follower.state, follower.stage, follower.progress) == ("running", "lower", 0.1)
    assert store.active_with_key("key").id == twin.id
    assert [job.id for job in store.active_jobs()] == [twin.id]  # a restart queues the twin only
    store.finish(cancelled.id, "cancelled", error="cancelled", exit_code=1)
    store.update(twin.id, stage="verify", progress=0.9)
    assert store.job(follower.id).stage == "verify" and store.job(cancelled.id).stage == "lower"
    store.finish(twin.id, "done")
    done = store.job(follower.id)
    assert (done.state, done.progress, done.exit_code, done.follows) == ("done", 1.0, 0, None)
    assert done.spec == {"output": "b.xml"} and store.job(cancelled.id).state == "cancelled"


def test_a_database_from_before_followers_gains_the_column(tmp_path):
    old = sqlite3.connect(tmp_path / "collc-serve.sqlite")
    old.execute(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, key TEXT NOT NULL, spec TEXT NOT NULL,"
        " gpus INTEGER NOT NULL,"
        " state TEXT NOT NULL, stage TEXT NOT NULL DEFAULT '', progress REAL NOT NULL DEFAULT 0,"
        " level INTEGER NOT NULL DEFAULT 0, preemptions INTEGER NOT NULL DEFAULT 0,"
        " cached INTEGER NOT NULL DEFAULT 0, submitted REAL NOT NULL, finished REAL, error TEXT,"
        " exit_code INTEGER, seq INTEGER NOT NULL)"
    )
    old.execute(
        "INSERT INTO jobs (id, key, spec, gpus, state, submitted, seq)"
        " VALUES ('j', 'k', '{}', 4, 'queued', 0, 1)"
    )
    old.commit()
    old.close()
    store = Store(tmp_path)
    assert [job.id for job in store.active_jobs()] == ["j"]
    follower = store.add_job("k", {}, 4, twin=store.job("j"))
    assert follower.follows == "j" and store.active_with_key("k").id == "j"
