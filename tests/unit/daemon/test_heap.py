"""daemon/heap.py: the C heap's arenas and trim, where the C library has them (glibc)."""

from __future__ import annotations

import asyncio

import pytest

from bascule.daemon import heap


def test_trim_gives_free_pages_back_or_says_it_cannot() -> None:
    blocks = [bytearray(64 * 1024) for _ in range(64)]
    del blocks
    assert heap.trim() in (True, False)  # False: nothing to give back, or not glibc


def test_an_arena_limit_set_in_the_environment_is_left_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert heap.limit_arenas() is False


def test_the_arena_limit_is_set_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert heap.limit_arenas() is (heap._LIBC is not None)


async def test_a_burst_of_changes_trims_once_after_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trimmed = asyncio.Event()
    calls: list[int] = []

    def counted() -> bool:
        calls.append(1)
        loop.call_soon_threadsafe(trimmed.set)
        return True

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(heap, "_LIBC", object())
    monkeypatch.setattr(heap, "trim", counted)
    trimmer = heap.Trimmer(delay=0.05)
    for _ in range(5):
        trimmer.soon()
    assert calls == []  # not on the request's way
    await asyncio.wait_for(trimmed.wait(), timeout=5)
    assert calls == [1]
    assert trimmer._timer is None  # the four before the last were cancelled: nothing waits


async def test_no_trim_is_scheduled_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_LIBC", None)
    trimmer = heap.Trimmer(delay=0.0)
    trimmer.soon()
    assert trimmer._timer is None


def test_the_thresholds_are_fixed_on_glibc() -> None:
    assert heap.fix_thresholds() is (heap._LIBC is not None)


def test_thresholds_set_in_the_environment_are_left_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, parameter: int, value: int) -> int:
            calls.append((parameter, value))
            return 1

    monkeypatch.setattr(heap, "_LIBC", Libc())
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert heap.fix_thresholds() is True
    assert calls == [(heap._M_TRIM_THRESHOLD, heap.TRIM_THRESHOLD)]
