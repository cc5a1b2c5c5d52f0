"""The daemon's C heap: fewer malloc arenas, and the memory it freed given back to the system.

Measured at 1,000 services x 10 real servers (issue 15, docs/performance.md): glibc gives each
thread that allocates its own arena (up to 8 per CPU), and the worker threads of
``asyncio.to_thread`` (an apply, a status report) build and drop tens of megabytes each in
theirs; a freed block inside a heap stays resident until ``malloc_trim`` gives its pages back.
So the daemon limits the arenas to ``ARENAS`` before its first worker thread starts, and trims
after its periodic heavy work (each statistics sample, and each pass of the repair loop, which
reads 10,000 servers' runtime state and plans them: 5-6 MiB less at rest, docs/performance.md
section 17) and after a burst of changes (``Trimmer``: an apply of 10,000 servers leaves ~30
MiB freed but resident). It also fixes
glibc's thresholds (``fix_thresholds``): by default a freed block mapped of its own raises the
mmap threshold to its size (up to 32 MiB), so the next status answer of 4 MiB, ``show stat``'s
megabytes or a large dict's table is carved from an arena and its pages stay resident until
a trim; with a fixed ``MMAP_THRESHOLD`` such blocks are mapped of their own and given back when
freed, and an arena's free top past ``TRIM_THRESHOLD`` is given back at once. All are glibc's;
elsewhere (musl) they are left out and nothing changes but the memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from typing import Any

ARENAS = 2
#: Blocks from this size up are mapped of their own (glibc's default starts at 128 KiB and
#: rises with every such block freed, which turns the adjustment off when set). Measured at
#: 1,000 x 10 (docs/performance.md, section 12): 256 KiB gave ~4 MiB less RSS than 1 MiB but
#: mapped and faulted in every write's larger buffers anew, +4 to +5 ms on each weight, drain
#: or enable (20 ms p50, the target's edge); 4 MiB was as fast as none and kept as much.
MMAP_THRESHOLD = 1024 * 1024
#: An arena's free top past this is given back when a block is freed (glibc: 128 KiB, raised
#: to twice the mmap threshold as that rises).
TRIM_THRESHOLD = 4 * 1024 * 1024
# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _glibc() -> Any | None:
    """The process's C library when it has ``mallopt`` and ``malloc_trim`` (glibc)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc


_LIBC = _glibc()


def limit_arenas(count: int = ARENAS) -> bool:
    """At most ``count`` malloc arenas (``MALLOC_ARENA_MAX``, unless the environment set it):
    effective for the threads that have not allocated yet, so called before any starts.
    False where the C library has no such setting."""
    if _LIBC is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(_LIBC.mallopt(_M_ARENA_MAX, count))


def fix_thresholds(mmap: int = MMAP_THRESHOLD, trim: int = TRIM_THRESHOLD) -> bool:
    """Fixed mmap and trim thresholds (``MMAP_THRESHOLD``, ``TRIM_THRESHOLD``), each unless the
    environment set it (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``). False where the
    C library has no such settings."""
    if _LIBC is None:
        return False
    done = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done = bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, mmap)) and done
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        done = bool(_LIBC.mallopt(_M_TRIM_THRESHOLD, trim)) and done
    return done


def trim() -> bool:
    """Give the free pages of every arena back to the system; True when some were."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


class Trimmer:
    """One ``trim`` in a worker thread ``delay`` seconds after the last of a burst of heavy
    work (``soon``, on the event loop): a change's request does not wait for it, and 30 weight
    changes in a row trim once, after the last."""

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = delay
        self._timer: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        if _LIBC is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.delay, self._trim, loop)

    def _trim(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        # RuntimeError: the daemon is stopping and its worker threads are gone
        with contextlib.suppress(RuntimeError):
            loop.run_in_executor(None, trim)
