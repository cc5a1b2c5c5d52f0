"""Hostile documents shared by the tests of every door (importable from every test under
tests/unit, whose directory is on the path, like change_requests)."""

from __future__ import annotations

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)),
        "virtual_services: *i",
    ]
)
DEEP_YAML = "virtual_services:\n" + "".join(f"{' ' * i}- \n" for i in range(1, 3000))
DEEP_JSON = '{"virtual_services": ' + "[" * 100_000 + "]" * 100_000 + "}"
