"""What an engine cannot render is refused through the CLI (finding 7), over the unix socket
and over HTTPS: a persistence header with a single quote is a field error, not a traceback."""

from __future__ import annotations

from test_cli_remote import Served, error, local, remote, served  # noqa: F401 (the fixture)


def test_a_quote_in_the_persistence_header_is_a_field_error(served: Served) -> None:  # noqa: F811
    before = served.services.config.store.head_number()
    for refused in (
        local(served, "vs", "set", "web", "persistence.method=selected_header",
              "persistence.header=X-It's"),
        remote(served, "admin", "vs", "set", "web", "persistence.method=selected_header",
               "persistence.header=X-It's"),
    ):  # fmt: skip
        message = error(refused)
        assert "persistence.header: must not contain a single quote" in message
    assert served.services.config.store.head_number() == before
