"""The I/O shell: the only code that executes a Plan.

It owns the reconcile loop (reconciler.py), engine supervision, VIP addresses, startup
adoption and shutdown, and the one service layer (service.py, over the change pipeline of
changes.py) that every door (API, WUI, CLI) goes through with a ``ChangeRequest``.
"""
