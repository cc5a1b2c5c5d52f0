"""The ``bascule`` command: a client of the daemon's REST API, for people and for scripts.

Every command here talks to the running daemon over its unix socket (``<data dir>/bascule.sock``)
through ``client.BasculeClient``; nothing in this package reads the store or drives an engine
itself, so the CLI, the WUI and the API all go through the one service layer. The daemon's own
commands (``run``, ``demo``) are added by the composition root, ``bascule.main``.
"""
