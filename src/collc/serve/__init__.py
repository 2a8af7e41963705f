"""``collc serve``: a schedule service for cluster schedulers (docs/serve.md).

policy.py (which job runs next), steps.py (a request and slices of the compile's steps), store.py
(SQLite and offloaded states), backend.py (worker processes), scheduler.py (admission, preemption,
offload), app.py (the HTTP API).
"""
