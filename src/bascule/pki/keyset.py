"""Private keys sealed with an administrator's passphrase, for backups (pure).

A backup always carries the certificates; it carries their private keys only sealed with a
passphrase the administrator gives (and gives again to restore). The scheme, ``scrypt-aes256gcm``:

- the key set is one JSON object ``{name: PKCS#8 PEM}``, encrypted whole with AES-256-GCM
  (a random 96-bit nonce) under a key derived from the passphrase by scrypt (RFC 7914) with a
  random 16-byte salt, n = 2^17, r = 8, p = 1 (128 MiB, about half a second: costly to guess);
- the associated data is what the caller binds the keys to (the backup's certificate list),
  so keys cannot be moved onto other certificates without the tag failing;
- salt, nonce, parameters and ciphertext are stored in base64 beside the certificates.

A wrong passphrase and a tampered backup fail alike (the GCM tag), and nothing is restored.
One encryption of the whole set, rather than PKCS#8 encryption per key, hides how many keys
there are and under which names, and costs one scrypt derivation per backup.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from bascule.errors import InvalidCertificate

SCHEME = "scrypt-aes256gcm"
MIN_PASSPHRASE = 12
DEFAULT_COST = 2**17
#: The largest cost a backup may ask for (1 GiB of memory at r = 8): a hostile file must not
#: make the restore use more.
MAX_COST = 2**20
_R, _P = 8, 1


def seal_keys(
    keys: Mapping[str, bytes], passphrase: str, *, associated: bytes, cost: int | None = None
) -> dict[str, Any]:
    """``keys`` (name -> PEM) encrypted under ``passphrase``, as a JSON-ready mapping; scrypt's
    ``cost`` is ``DEFAULT_COST`` unless given (read when called: the unit tests lower it)."""
    cost = DEFAULT_COST if cost is None else cost
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidCertificate("passphrase", f"must be at least {MIN_PASSPHRASE} characters long")
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    plain = json.dumps({name: pem.decode("ascii") for name, pem in keys.items()}).encode()
    sealed = AESGCM(_derive(passphrase, salt, cost)).encrypt(nonce, plain, associated)
    return {
        "scheme": SCHEME,
        "n": cost,
        "r": _R,
        "p": _P,
        "salt": _b64(salt),
        "nonce": _b64(nonce),
        "ciphertext": _b64(sealed),
    }


def open_keys(sealed: Mapping[str, Any], passphrase: str, *, associated: bytes) -> dict[str, bytes]:
    """The key set ``seal_keys`` made, or ``InvalidCertificate`` on any mismatch."""
    if sealed.get("scheme") != SCHEME:
        raise InvalidCertificate(
            "keys", f"the keys are sealed with an unknown scheme {sealed.get('scheme')!r}"
        )
    try:
        cost = int(sealed["n"])
        if sealed["r"] != _R or sealed["p"] != _P or not 2 <= cost <= MAX_COST:
            raise ValueError("parameters")
        salt, nonce = _unb64(sealed["salt"]), _unb64(sealed["nonce"])
        ciphertext = _unb64(sealed["ciphertext"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise InvalidCertificate("keys", "the sealed keys are damaged") from None
    try:
        plain = AESGCM(_derive(passphrase, salt, cost)).decrypt(nonce, ciphertext, associated)
    except (InvalidTag, ValueError):
        raise InvalidCertificate(
            "passphrase", "wrong passphrase, or the backup was altered: no key restored"
        ) from None
    keys = json.loads(plain)
    return {str(name): str(pem).encode("ascii") for name, pem in keys.items()}


def _derive(passphrase: str, salt: bytes, cost: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=cost, r=_R, p=_P).derive(passphrase.encode("utf-8"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not text")
    return base64.b64decode(text, validate=True)
