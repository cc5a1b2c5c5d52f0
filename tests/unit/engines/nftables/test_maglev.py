"""Maglev: weights honoured, minimal disruption, determinism (engines/nftables/maglev.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.engines.nftables.maglev import is_prime, lookup_table, shares

FIVE = {f"198.18.0.{11 + i}:80": 1000 for i in range(5)}


def moved(before: tuple[str, ...], after: tuple[str, ...], removed: str | None = None) -> float:
    """Fraction of slots that changed owner, not counting the slots of ``removed``."""
    changed = sum(1 for a, b in zip(before, after, strict=True) if a != b and a != removed)
    return changed / len(before)


def test_equal_weights_share_equally() -> None:
    for share in shares(lookup_table(FIVE)).values():
        assert share == pytest.approx(0.2, abs=0.01)


def test_weights_are_honoured_within_one_percent() -> None:
    weights = {"a": 1000, "b": 3000, "c": 500, "d": 65535, "e": 1}
    total = sum(weights.values())
    got = shares(lookup_table(weights))
    for name, weight in weights.items():
        assert got.get(name, 0.0) == pytest.approx(weight / total, abs=0.01)


def test_removing_one_of_five_moves_its_fifth_and_almost_nothing_else() -> None:
    before = lookup_table(FIVE)
    gone = "198.18.0.13:80"
    after = lookup_table({k: w for k, w in FIVE.items() if k != gone})
    own = sum(1 for a in before if a == gone) / len(before)
    assert own == pytest.approx(0.2, abs=0.01)
    assert gone not in after
    assert moved(before, after, removed=gone) <= 0.01


def test_adding_back_restores_the_table() -> None:
    before = lookup_table(FIVE)
    lookup_table({k: w for k, w in FIVE.items() if k != "198.18.0.11:80"})
    assert lookup_table(dict(reversed(FIVE.items()))) == before


def test_deterministic_across_processes() -> None:
    code = (
        "from bascule.engines.nftables.maglev import lookup_table;"
        "import hashlib;"
        "t = lookup_table({'a': 1, 'b': 2, 'c': 3}, 251);"
        "print(hashlib.sha256(' '.join(t).encode()).hexdigest())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2)
    }
    assert len(outputs) == 1


@pytest.mark.parametrize("size", [0, 1, 4, 100, 65536])
def test_size_must_be_a_prime(size: int) -> None:
    with pytest.raises(ValueError, match="prime"):
        lookup_table({"a": 1}, size)


def test_refuses_no_backends_and_bad_weights() -> None:
    with pytest.raises(ValueError, match="at least one"):
        lookup_table({})
    with pytest.raises(ValueError, match="positive"):
        lookup_table({"a": 0})


def test_is_prime() -> None:
    assert [n for n in range(30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
    assert is_prime(65537)


names = st.lists(
    st.from_regex(r"[a-z0-9.:]{1,12}", fullmatch=True), min_size=2, max_size=8, unique=True
)


@settings(max_examples=40, deadline=None)
@given(names=names, weights=st.lists(st.integers(1, 20), min_size=8, max_size=8))
def test_property_every_slot_filled_and_shares_follow_weights(
    names: list[str], weights: list[int]
) -> None:
    table_weights = dict(zip(names, weights, strict=False))
    table = lookup_table(table_weights, 4099)
    assert set(table) <= set(table_weights)
    total = sum(table_weights.values())
    for name, share in shares(table).items():
        assert share == pytest.approx(table_weights[name] / total, abs=0.01)


@settings(max_examples=30, deadline=None)
@given(names=names, data=st.data())
def test_property_removal_moves_little_else(names: list[str], data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(names))
    before = lookup_table(dict.fromkeys(names, 1), 4099)
    after = lookup_table(dict.fromkeys([n for n in names if n != gone], 1), 4099)
    assert gone not in after
    # every slot of the removed backend moves; of the others, a few percent at most. Maglev's
    # disruption is near-minimal, not zero: with as few as three backends in a 4099-slot
    # table hypothesis found 5.2 %, so the bound is 8 % (the 5-server integration test
    # measures 0 % of the others' flows moving).
    assert moved(before, after, removed=gone) <= 0.08
    assert lookup_table(dict.fromkeys(reversed(names), 1), 4099) == before
