"""Hostile files through the CLI (finding 9): ``bascule apply -f`` refuses YAML aliases (a
billion-laughs file used to take the client's memory) and nesting too deep, before anything is
sent; the daemon's door refuses the same (over the unix socket, ``bascule`` is its client)."""

from __future__ import annotations

import resource

from hostile_documents import BILLION_LAUGHS, DEEP_YAML
from test_cli_remote import Served, error, local, served  # noqa: F401 (the fixture)


def test_apply_refuses_aliases_and_deep_nesting(served: Served) -> None:  # noqa: F811
    before = served.services.config.store.head_number()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    laughs = error(local(served, "apply", "-f", "-", input=BILLION_LAUGHS))
    assert "line 2: aliases (*name) are not accepted" in laughs
    deep = error(local(served, "apply", "-f", "-", input=DEEP_YAML))
    assert "nested deeper than" in deep
    # nothing was expanded: the process grew by far less than the expansion's gigabytes
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kib < 200 * 1024
    assert served.services.config.store.head_number() == before

