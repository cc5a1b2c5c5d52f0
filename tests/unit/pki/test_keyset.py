"""Private keys sealed with a passphrase: round trip, wrong passphrase, tampering."""

from __future__ import annotations

import base64

import pytest

from bascule.errors import InvalidCertificate
from bascule.pki.keyset import MAX_COST, SCHEME, open_keys, seal_keys

CHEAP = 2**4  # scrypt's cost is not under test
KEYS = {"shop": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}
PASSPHRASE = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_sealing() -> None:
    """Not the conftest's: here the production default cost is under test."""


def test_round_trip() -> None:
    sealed = seal_keys(KEYS, PASSPHRASE, associated=b"entries", cost=CHEAP)
    assert sealed["scheme"] == SCHEME
    assert b"PRIVATE KEY" not in base64.b64decode(sealed["ciphertext"])
    assert open_keys(sealed, PASSPHRASE, associated=b"entries") == KEYS


def test_the_default_cost_is_costly() -> None:
    sealed = seal_keys({}, PASSPHRASE, associated=b"")
    assert sealed["n"] == 2**17 and sealed["r"] == 8


def test_a_wrong_passphrase_restores_nothing() -> None:
    sealed = seal_keys(KEYS, PASSPHRASE, associated=b"entries", cost=CHEAP)
    with pytest.raises(InvalidCertificate, match=r"^passphrase: wrong passphrase"):
        open_keys(sealed, "another passphrase", associated=b"entries")


def test_keys_are_bound_to_their_certificates() -> None:
    sealed = seal_keys(KEYS, PASSPHRASE, associated=b"entries", cost=CHEAP)
    with pytest.raises(InvalidCertificate, match="wrong passphrase, or the backup was altered"):
        open_keys(sealed, PASSPHRASE, associated=b"other entries")


def test_a_short_passphrase_is_refused() -> None:
    with pytest.raises(InvalidCertificate, match=r"^passphrase: must be at least 12"):
        seal_keys(KEYS, "short", associated=b"")


@pytest.mark.parametrize(
    "change",
    [
        {"scheme": "rot13"},
        {"n": MAX_COST * 2},
        {"salt": "not base64!"},
        {"nonce": None},
    ],
)
def test_damaged_or_hostile_parameters_are_refused(change: dict[str, object]) -> None:
    sealed = seal_keys(KEYS, PASSPHRASE, associated=b"", cost=CHEAP) | change
    with pytest.raises(InvalidCertificate, match=r"^keys: "):
        open_keys(sealed, PASSPHRASE, associated=b"")
