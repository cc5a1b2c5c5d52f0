"""Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network
Load Balancer", NSDI 2016, section 3.4), weighted, as a pure function.

Where this sits in the flow of a change: ``scheduling.py`` calls ``lookup_table`` for every L4
service that hashes (all of DSR, and ``source_ip_hash`` in NAT) and loads the result into an
nft map ``jhash(flow) mod M -> real server``. The kernel then picks a real server per flow
without any state, which is what Direct Server Return needs: the netdev ingress hook has no
connection tracking, so the same flow must always hash to the same server.

Properties (tested in tests/unit/engines/nftables/test_maglev.py):

- deterministic across processes and machines: the two hashes come from ``hashlib``
  (BLAKE2b), never from Python's salted ``hash()``;
- weighted: a backend of weight ``w`` owns about ``w / sum(weights)`` of the ``M`` slots;
- minimal disruption: removing one of N backends moves its own slots and only a small
  fraction (the paper measures well under 1/N) of the others; adding it back restores the
  table exactly, because the table depends only on the set of backends and their weights.

The table size ``M`` must be a prime (so every ``skip`` is coprime with it and a permutation
visits every slot) and much larger than the number of backends; 65537 is the production
size, tests use smaller primes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

DEFAULT_TABLE_SIZE = 65537


def is_prime(number: int) -> bool:
    if number < 2:
        return False
    if number % 2 == 0:
        return number == 2
    divisor = 3
    while divisor * divisor <= number:
        if number % divisor == 0:
            return False
        divisor += 2
    return True


def _hash(name: str, salt: bytes) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8, salt=salt).digest()
    return int.from_bytes(digest, "big")


def permutation_start(name: str, size: int) -> tuple[int, int]:
    """The paper's (offset, skip) for one backend: its preference list is
    ``(offset + j * skip) mod size`` for j = 0, 1, 2...
    """
    offset = _hash(name, b"maglev-offset") % size
    skip = _hash(name, b"maglev-skip") % (size - 1) + 1
    return offset, skip


def lookup_table(weights: Mapping[str, int], size: int = DEFAULT_TABLE_SIZE) -> tuple[str, ...]:
    """The Maglev lookup table: slot -> backend name, for backends named by ``weights``' keys.

    Each round every backend earns ``weight / max_weight`` turns (a credit carried over from
    round to round), and each turn takes the backend's next preferred free slot, as in the
    paper's Population algorithm; with equal weights this is exactly the paper's algorithm.
    Backends are visited in name order so the table does not depend on the mapping's order.
    Raise ValueError for an empty mapping, a weight below 1 or a size that is not a prime.
    """
    if not weights:
        raise ValueError("Maglev needs at least one backend")
    if any(weight < 1 for weight in weights.values()):
        raise ValueError("Maglev weights must be positive")
    if not is_prime(size) or size < len(weights):
        raise ValueError(f"the Maglev table size {size} must be a prime above the backend count")
    names: Sequence[str] = sorted(weights)
    largest = max(weights.values())
    starts = [permutation_start(name, size) for name in names]
    following = [0] * len(names)  # the paper's next[i]
    credit = [0] * len(names)  # in units of 1/largest turn: integers, so exact everywhere
    table: list[int] = [-1] * size
    filled = 0
    while True:
        for index, name in enumerate(names):
            credit[index] += weights[name]
            while credit[index] >= largest:
                credit[index] -= largest
                offset, skip = starts[index]
                slot = (offset + following[index] * skip) % size
                while table[slot] >= 0:
                    following[index] += 1
                    slot = (offset + following[index] * skip) % size
                table[slot] = index
                following[index] += 1
                filled += 1
                if filled == size:
                    return tuple(names[i] for i in table)


def shares(table: Sequence[str]) -> dict[str, float]:
    """The fraction of slots each backend owns."""
    counts: dict[str, int] = {}
    for name in table:
        counts[name] = counts.get(name, 0) + 1
    return {name: count / len(table) for name, count in counts.items()}
