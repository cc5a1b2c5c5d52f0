"""Certificate expiry as levels: the warnings at 30 and 7 days (pure).

The status, the WUI (colour), ``/metrics`` and the log read the same verdict. A certificate
that expires while in use keeps serving (the store refuses only new use): its level turns
``expired`` and stays loud.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

WARNING_DAYS = 30
CRITICAL_DAYS = 7


class ExpiryLevel(enum.StrEnum):
    ok = "ok"
    warning = "warning"  # 30 days or less left
    critical = "critical"  # 7 days or less left
    expired = "expired"


@dataclass(frozen=True, kw_only=True)
class ExpiryWarning:
    """One certificate that needs attention, and the sentence the log and status show."""

    name: str
    level: ExpiryLevel
    not_after: datetime.datetime
    seconds_left: float  # negative once expired (bascule_certificate_expiry_seconds)

    @property
    def message(self) -> str:
        if self.level is ExpiryLevel.expired:
            return (
                f"certificate {self.name} expired on {self.not_after:%Y-%m-%d %H:%M} UTC; "
                "services using it still serve it: replace it"
            )
        days = int(self.seconds_left // 86400)
        return (
            f"certificate {self.name} expires in {days} day{'s' if days != 1 else ''} "
            f"({self.not_after:%Y-%m-%d %H:%M} UTC): renew or replace it"
        )


def expiry_level(not_after: datetime.datetime, *, now: datetime.datetime) -> ExpiryLevel:
    left = not_after - now
    if left <= datetime.timedelta(0):
        return ExpiryLevel.expired
    if left <= datetime.timedelta(days=CRITICAL_DAYS):
        return ExpiryLevel.critical
    if left <= datetime.timedelta(days=WARNING_DAYS):
        return ExpiryLevel.warning
    return ExpiryLevel.ok


def expiry_warnings(
    not_after: Mapping[str, datetime.datetime] | Iterable[tuple[str, datetime.datetime]],
    *,
    now: datetime.datetime,
) -> tuple[ExpiryWarning, ...]:
    """The certificates (name -> not-after) that need attention, soonest first."""
    items = not_after.items() if isinstance(not_after, Mapping) else not_after
    warnings = [
        ExpiryWarning(
            name=name,
            level=level,
            not_after=moment,
            seconds_left=(moment - now).total_seconds(),
        )
        for name, moment in items
        if (level := expiry_level(moment, now=now)) is not ExpiryLevel.ok
    ]
    return tuple(sorted(warnings, key=lambda w: (w.not_after, w.name)))
