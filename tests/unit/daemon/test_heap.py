"""daemon/heap.py: the C heap's arenas and trim, where the C library has them (glibc)."""

from __future__ import annotations

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
