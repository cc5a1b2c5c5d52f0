"""Service-type auto-detection: ``type: auto`` on apply and ``bascule detect ADDR:PORT``.

classify.py (pure) reads the bytes a real server sent and draws the ``Verdict``; probes.py
(asyncio) connects to the real servers and asks them, within short timeouts; resolve.py
(pure) turns a verdict into the document that is committed.
"""

from bascule.detect.classify import Verdict, classify, conclude
from bascule.detect.probes import ServiceProber, Timing, detect
from bascule.detect.resolve import Choice, check_given, choose, rewrite

__all__ = [
    "Choice",
    "ServiceProber",
    "Timing",
    "Verdict",
    "check_given",
    "choose",
    "classify",
    "conclude",
    "detect",
    "rewrite",
]
