"""The STARTTLS front: stunnel4 speaks SMTP, IMAP and POP3's STARTTLS for ``type: starttls``
services and hands the plain sessions to HAProxy's loopback relay (see engine.py)."""
