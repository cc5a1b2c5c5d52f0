"""HAProxy's runtime SSL transactions and map updates as values: requests and verdicts, no I/O.

Where it sits in the flow of a change: a certificate of the store is replaced (``bascule cert
replace``, an ACME renewal, a restore); the daemon rewrites its file, then the HAProxy engine
swaps it in the running worker without a reload through the requests built here (management.txt
9.3, "set ssl cert", "commit ssl cert", "abort ssl cert" and their "ca-file" twins), which the
shell sends on the stats socket one per connection. ACME's HTTP-01 challenges are answered from
a map the engine updates with "add map" / "del map". The verdicts parse HAProxy 2.6.12's
answers (captured in tests/unit/engines/haproxy/test_transactions.py).

A payload request is its own connection: a command line ending in ``<<``, the payload, then an
empty line; several commands cannot share the line the way ``runtime.command_line`` joins them,
so these answers carry no severity prefix and are read by their texts.
"""

from __future__ import annotations

import enum
import re

from bascule.errors import EngineError

# What a path or a map key may hold on the CLI: no whitespace (the word separator), no ';'
# (the command separator) and no backslash (management.txt 9.3).
_WORD = re.compile(r"^[^\s;\\]+$")


class SslObject(enum.Enum):
    """What a transaction replaces: a certificate (cert, chain, key) or a CA file."""

    cert = "cert"
    ca_file = "ca-file"


def _word(kind: str, value: str) -> str:
    if not _WORD.fullmatch(value):
        raise ValueError(f"{kind} {value!r} cannot be written on HAProxy's CLI")
    return value


def set_ssl(kind: SslObject, path: str, pem: bytes) -> str:
    """``set ssl cert|ca-file <path> <<`` with ``pem`` as the payload (its blank lines
    removed: an empty line ends a payload, and PEM needs none)."""
    lines = [line for line in pem.decode("ascii").splitlines() if line.strip()]
    if not lines:
        raise ValueError("an empty payload replaces nothing")
    payload = "\n".join(lines)
    return f"set ssl {kind.value} {_word('path', path)} <<\n{payload}\n\n"


def commit_ssl(kind: SslObject, path: str) -> str:
    return f"commit ssl {kind.value} {_word('path', path)}\n"


def abort_ssl(kind: SslObject, path: str) -> str:
    return f"abort ssl {kind.value} {_word('path', path)}\n"


# Answers of HAProxy 2.6.12: "Transaction created for certificate <path>!" (or "updated"),
# "transaction created for CA <path>!"; a commit ends with "Success!".
_STARTED = re.compile(r"^transaction (created|updated) for (certificate|CA) ", re.IGNORECASE)
_COMMITTED = "Success!"


def check_started(answer: str) -> None:
    """Raise EngineError with HAProxy's words unless ``set ssl ...`` opened a transaction."""
    lines = [line for line in answer.splitlines() if line.strip()]
    if not any(_STARTED.match(line) for line in lines):
        raise EngineError("HAProxy refused the new certificate: " + " ".join(lines))


def check_committed(answer: str) -> None:
    """Raise EngineError with HAProxy's words unless ``commit ssl ...`` ended in Success."""
    lines = [line for line in answer.splitlines() if line.strip()]
    if _COMMITTED not in lines:
        raise EngineError("HAProxy could not commit the new certificate: " + " ".join(lines))


# --- maps (management.txt 9.3, "add map", "del map") ----------------------------------------


def add_map(map_path: str, key: str, value: str) -> str:
    return f"add map {_word('map', map_path)} {_word('key', key)} {_word('value', value)}\n"


def set_map(map_path: str, key: str, value: str) -> str:
    """Replace the value of ``key`` in one step (a lookup never sees it missing)."""
    return f"set map {_word('map', map_path)} {_word('key', key)} {_word('value', value)}\n"


def map_entry_missing(answer: str) -> bool:
    """Whether ``set map`` found no entry to change (then ``add map`` adds it)."""
    return "entry not found" in answer.lower()


def del_map(map_path: str, key: str) -> str:
    return f"del map {_word('map', map_path)} {_word('key', key)}\n"


_MAP_ERRORS = ("Unknown map identifier", "Unknown command", "Permission denied", "Out of memory")


def check_map_answer(answer: str) -> None:
    """Raise EngineError on a failed map update. "Key not found." after ``del map`` is no
    failure: the entry is gone either way."""
    text = " ".join(line.strip() for line in answer.splitlines() if line.strip())
    if any(error in text for error in _MAP_ERRORS):
        raise EngineError(f"HAProxy runtime API: {text}")
