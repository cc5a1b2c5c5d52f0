"""The desired state: a pure, engine-agnostic model of Bascule's configuration document.

Nothing here does I/O or knows about engines, storage or HTTP. ``parse_document`` is the one
entry point every door (YAML, API, WUI, CLI) uses to turn user input into a validated
``Configuration`` or an ``InvalidConfiguration`` that names every bad field.
"""

from bascule.model.capabilities import (
    CheckType,
    Mode,
    PersistenceMethod,
    Protocol,
    Scheduler,
    ServiceType,
    StartTls,
)
from bascule.model.check import HealthCheck, HttpMethod, StatusRange
from bascule.model.document import Configuration, parse_document
from bascule.model.persistence import Persistence, PersistenceFallback
from bascule.model.real_server import Forwarding, RealServer, RealServerState
from bascule.model.tls import Tls
from bascule.model.virtual_service import Adaptive, PortRange, VirtualService
from bascule.model.weights import scale_weights

__all__ = [
    "Adaptive",
    "CheckType",
    "Configuration",
    "Forwarding",
    "HealthCheck",
    "HttpMethod",
    "Mode",
    "Persistence",
    "PersistenceFallback",
    "PersistenceMethod",
    "PortRange",
    "Protocol",
    "RealServer",
    "RealServerState",
    "Scheduler",
    "ServiceType",
    "StartTls",
    "StatusRange",
    "Tls",
    "VirtualService",
    "parse_document",
    "scale_weights",
]
