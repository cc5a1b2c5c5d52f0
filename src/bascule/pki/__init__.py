"""Certificates and keys as values: parse, refuse, describe, generate, seal (pure).

Sits under the certificate store (``store/certificates.py``) and the daemon: whatever door a
certificate comes in by (CLI file, API upload, WUI paste, ACME), it is turned into a
``CertificateBundle`` or a ``CaBundle`` here, or refused with ``InvalidCertificate`` naming the
input at fault. Nothing here touches a file, a socket or the clock: callers pass the bytes in
and ``now`` with them.

- ``certificates``: PEM and PKCS#12 in, ``CertificateBundle`` / ``CaBundle`` out, every refusal.
- ``describe``: what a person is shown about a certificate; whether its names cover a host.
- ``selfsigned``: a self-signed certificate for a list of names and addresses.
- ``expiry``: the 30- and 7-day warnings.
- ``keyset``: private keys sealed with a passphrase for backups (scrypt + AES-256-GCM).
"""
