"""The audit log cannot be used to fill the disk (finding 4): what a request carries is stored
short and printable, and refusals are recorded a few at a time per actor."""

from __future__ import annotations

from fake_clock import Clock

from bascule.daemon.audit import LIMITS, REFUSAL_BURST, REFUSAL_EVERY, AuditService
from bascule.model.access import Actor, Role
from bascule.store.audit import AuditOutcome

VIEWER = Actor(name="viewer", role=Role.viewer, via="token", remote="203.0.113.9")


def test_what_a_request_carries_is_stored_short_and_printable(audit: AuditService) -> None:
    path = "/api/v1/" + "x" * 60_000 + "\x1b[2J"
    audit.record(VIEWER, "access.denied", f"GET {path}", outcome=AuditOutcome.refused,
                 detail="d" * 100_000)  # fmt: skip
    audit.record("ev\x1bil" + "n" * 1000, "login", "n", remote="r" * 1000)
    [login, denied] = audit.page(0, 10)[0]
    assert len(denied.target) < LIMITS["target"] + 40
    assert denied.target.endswith("more characters)")
    assert len(denied.detail) < LIMITS["detail"] + 40
    assert "\x1b" not in login.actor and login.actor.startswith("ev\\x1bil")
    assert len(login.actor) < LIMITS["actor"] + 40 and len(login.remote) < LIMITS["remote"] + 40


def test_refusals_are_recorded_a_few_at_a_time_per_actor(audit: AuditService, clock: Clock) -> None:
    for _ in range(1000):
        audit.record(VIEWER, "access.denied", "POST /x", outcome=AuditOutcome.refused)
    assert audit.page(0, 1)[1] == REFUSAL_BURST
    # another actor has their own allowance; other outcomes are not limited here
    other = Actor(name="olivia", role=Role.operator, via="token", remote="198.51.100.1")
    audit.record(other, "access.denied", "POST /x", outcome=AuditOutcome.refused)
    audit.record(VIEWER, "login", "viewer")
    assert audit.page(0, 1)[1] == REFUSAL_BURST + 2
    clock.now += REFUSAL_EVERY
    audit.record(VIEWER, "access.denied", "POST /x", outcome=AuditOutcome.refused)
    latest = audit.page(0, 1)[0][0]
    assert latest.detail.endswith(f"({1000 - REFUSAL_BURST} more refusals of viewer not recorded)")
