"""The configuration store: one SQLite file, ``bascule.db``, in the data dir.

Sits after validation in the flow of a change: a validated document becomes a numbered revision
(who, when, why, and the diff from the one before), and the daemon records beside it which
revision is running. ``database`` opens the file and migrates its schema; ``revisions`` keeps
the revisioned configuration. sqlite3 errors never leave this package: they become
``StoreError``.
"""
