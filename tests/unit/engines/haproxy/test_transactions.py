"""Runtime SSL transactions and map updates: the requests, and verdicts on HAProxy 2.6.12's own
answers (captured on this machine with a crt-list listener, a ca-file and an ACME map)."""

from __future__ import annotations

import pytest

from bascule.engines.haproxy import transactions as tx
from bascule.errors import EngineError

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n\n-----END CERTIFICATE-----\n\n"

CREATED = "Transaction created for certificate /tmp/hx/shop.pem!\n\n"
CREATED_CA = "transaction created for CA /tmp/hx/ca.pem!\n\n"
COMMITTED = "Committing /tmp/hx/shop.pem.\nSuccess!\n\n"
MISMATCH = (
    "inconsistencies between private key and certificate loaded '/tmp/hx/shop.pem'.\n"
    "Can't commit /tmp/hx/shop.pem!\n\n"
)
NOT_LOADED = (
    "Can't replace a certificate which is not referenced by the configuration!\n"
    "Can't update /tmp/hx/nope.pem!\n\n"
)
GARBAGE = (
    "unable to load certificate from file '/tmp/hx/shop.pem'.\nCan't load the payload\n"
    "Can't update /tmp/hx/shop.pem!\n\n"
)


def test_set_request_is_one_payload_without_blank_lines() -> None:
    request = tx.set_ssl(tx.SslObject.cert, "/d/shop.pem", PEM)
    assert request == (
        "set ssl cert /d/shop.pem <<\n-----BEGIN CERTIFICATE-----\nMIIB\n"
        "-----END CERTIFICATE-----\n\n"
    )
    assert tx.set_ssl(tx.SslObject.ca_file, "/d/ca.ca.pem", PEM).startswith(
        "set ssl ca-file /d/ca.ca.pem <<\n"
    )
    assert tx.commit_ssl(tx.SslObject.cert, "/d/shop.pem") == "commit ssl cert /d/shop.pem\n"
    assert tx.abort_ssl(tx.SslObject.ca_file, "/d/c.pem") == "abort ssl ca-file /d/c.pem\n"


@pytest.mark.parametrize("path", ["/d/a b.pem", "/d/a;show info", "/d/a\\b", "/d/a\nb"])
def test_paths_that_the_cli_would_split_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        tx.set_ssl(tx.SslObject.cert, path, PEM)


def test_verdicts_on_captured_answers() -> None:
    tx.check_started(CREATED)
    tx.check_started(CREATED_CA)
    tx.check_committed(COMMITTED)
    with pytest.raises(EngineError, match="not referenced by the configuration"):
        tx.check_started(NOT_LOADED)
    with pytest.raises(EngineError, match="unable to load certificate"):
        tx.check_started(GARBAGE)
    with pytest.raises(EngineError, match="inconsistencies between private key"):
        tx.check_committed(MISMATCH)


def test_map_updates() -> None:
    path = "/d/acme.map"
    key = "/.well-known/acme-challenge/tok-1"
    assert tx.add_map(path, key, "tok-1.thumb") == f"add map {path} {key} tok-1.thumb\n"
    assert tx.del_map(path, key) == f"del map {path} {key}\n"
    tx.check_map_answer("\n")
    tx.check_map_answer("Key not found.\n\n")
    with pytest.raises(EngineError, match="Unknown map identifier"):
        tx.check_map_answer("\n[3]: Unknown map identifier. Please use #<id> or <file>.\n\n")
    with pytest.raises(ValueError, match="cannot be written"):
        tx.add_map(path, key, "two words")
