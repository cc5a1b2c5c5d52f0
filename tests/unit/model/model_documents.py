"""Documents and assertions shared by the model's unit tests (not a test module): a valid
service to vary one field of, and the refusal of a document as field errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bascule.errors import FieldError, InvalidConfiguration
from bascule.model import parse_document

Document = dict[str, Any]

VS = "virtual_services[0]"
RS = f"{VS}.real_servers[0]"
CHECK = f"{VS}.check"
PERSIST = f"{VS}.persistence"


def server(address: str = "198.18.0.4", port: int = 80, **fields: Any) -> Document:
    return {"address": address, "port": port, **fields}


def service(**fields: Any) -> Document:
    base: Document = {
        "name": "web",
        "address": "198.18.0.100",
        "port": 80,
        "real_servers": [server()],
    }
    return {**base, **fields}


def doc(*services: Document) -> Document:
    return {"virtual_services": list(services) or [service()]}


def errors_of(document: Any) -> list[FieldError]:
    with pytest.raises(InvalidConfiguration) as caught:
        parse_document(document)
    return list(caught.value.errors)


def one_error(document: Any) -> FieldError:
    errors = errors_of(document)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def assert_refused(document: Document, path: str, message: str) -> None:
    """``document`` is refused with one error, at ``path``, whose message holds ``message``."""
    error = one_error(document)
    assert error.path == path
    assert message in error.message


def bad(cases: list[tuple[str, Document, str, str]]) -> list[Any]:
    """(id, document, path, message) cases as parameters of ``assert_refused``."""
    return [pytest.param(d, p, m, id=i) for i, d, p, m in cases]


def good(cases: list[tuple[str, Document]]) -> list[Any]:
    """(id, document) cases as parameters."""
    return [pytest.param(d, id=i) for i, d in cases]


def refused_at_their_paths(
    cases: list[tuple[str, Document, str, str]],
) -> Callable[[Document, str, str], None]:
    """The test that each (id, document, path, message) case is refused at its path, for a
    test module to name ``test_...``."""

    @pytest.mark.parametrize(("document", "path", "message"), bad(cases))
    def test(document: Document, path: str, message: str) -> None:
        assert_refused(document, path, message)

    return test


def accepted(cases: list[tuple[str, Document]]) -> Callable[[Document], None]:
    """The test that each (id, document) case is a valid document."""

    @pytest.mark.parametrize("document", good(cases))
    def test(document: Document) -> None:
        parse_document(document)

    return test
