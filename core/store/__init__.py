"""The state database: the single record of truth for uploads, frames, events and workers.

``sqldb`` (SQLite) and ``postgres`` are the dialect layer (one SQL); ``schema`` its migrations;
``db`` opens a home's database; ``lifecycle`` writes every transition of an upload (and
only writes: the retry decision is :mod:`core.jobs.settle`'s); ``queries`` reads; ``frames``,
``heartbeat`` and ``state`` hold the per-frame rows, the workers' heartbeats and the shared
key/value state (budgets, leader, off-peak flags).
"""
