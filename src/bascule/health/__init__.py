"""Bascule's own health checker, for the L4 services (HAProxy checks the L7 ones itself).

Three layers, from pure to I/O: ``results`` (the rise/fall state machine, a data table) and
``wire`` (packet formats) do no I/O; ``probes`` sends one check and returns a
``CheckResult``; ``checker`` runs every target's probes concurrently and reports flips.
"""

from bascule.health.checker import (
    HealthChecker,
    OnChange,
    Target,
    TargetRef,
    TargetStatus,
    targets_for,
)
from bascule.health.probes import Endpoint, IcmpMethod, endpoint_for, run_probe
from bascule.health.results import (
    CheckResult,
    CheckState,
    Event,
    IllegalTransition,
    Phase,
    transition_table,
)

__all__ = [
    "CheckResult",
    "CheckState",
    "Endpoint",
    "Event",
    "HealthChecker",
    "IcmpMethod",
    "IllegalTransition",
    "OnChange",
    "Phase",
    "Target",
    "TargetRef",
    "TargetStatus",
    "endpoint_for",
    "run_probe",
    "targets_for",
    "transition_table",
]
