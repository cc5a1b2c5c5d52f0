"""Hostile files through the CLI (finding 9): ``bascule apply -f`` bounds what YAML aliases
expand to (a billion-laughs file used to take the client's memory) and refuses nesting too
deep, before anything is sent (bascule.safeyaml, the daemon's own loader too)."""

from __future__ import annotations

import resource

from hostile_documents import BILLION_LAUGHS, DEEP_YAML
from test_cli_remote import Served, error, local, served  # noqa: F401 (the fixture)


def test_apply_refuses_a_billion_laughs_and_deep_nesting(served: Served) -> None:  # noqa: F811
    before = served.services.config.store.head_number()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    laughs = error(local(served, "apply", "-f", "-", input=BILLION_LAUGHS))
    assert "expands to more than" in laughs
    deep = error(local(served, "apply", "-f", "-", input=DEEP_YAML))
    assert "nested deeper than" in deep
    # nothing was expanded: the process grew by far less than the expansion's gigabytes
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kib < 200 * 1024
    assert served.services.config.store.head_number() == before
