"""The daemon's process: ``asyncio.run`` of the daemon (runner.py) with its clean-up bounded.

Where it sits: called by bascule/serve.py once the settings are read and the logging is set
up; it sets the C heap up (daemon/heap.py) before the first worker thread, runs ``Daemon``
and, once it has stopped, gives left-over tasks and threads ``LEFTOVERS_S`` before exiting
without them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from bascule.daemon import heap
from bascule.daemon.doors import AppFactory
from bascule.daemon.runner import Daemon
from bascule.settings import Settings

log = logging.getLogger("bascule.daemon")


#: After the daemon stopped, how long its left-over tasks and worker threads may take.
LEFTOVERS_S = 5.0


def run(settings: Settings, *, make_app: AppFactory) -> None:
    """``asyncio.run`` of the daemon, with its clean-up bounded: once the daemon has stopped
    (logged ``stopped``), a task that ignores its cancellation or a worker thread still
    blocked (``asyncio.run`` waits for both, without limit) must not keep the process alive:
    after ``LEFTOVERS_S`` it is logged and the process exits without it."""
    heap.limit_arenas()  # before the first worker thread allocates (daemon/heap.py)
    heap.fix_thresholds()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    failed = True
    try:
        loop.run_until_complete(Daemon(settings, make_app=make_app).run())
        failed = False
    finally:
        try:
            left = asyncio.all_tasks(loop)  # (the loop is not running: none is ours)
            loop.run_until_complete(asyncio.wait_for(_leftovers(loop, left), LEFTOVERS_S))
        except TimeoutError:
            threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
            log.warning(
                "work left over after the stop: exiting without it",
                extra={"after_s": LEFTOVERS_S, "threads": threads},
            )
            logging.shutdown()
            os._exit(1 if failed else 0)
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def _leftovers(loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[Any]]) -> None:
    """What ``asyncio.run`` does after its coroutine: cancel the ``tasks`` left, finish the
    async generators, and wait for the default executor's threads."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()
