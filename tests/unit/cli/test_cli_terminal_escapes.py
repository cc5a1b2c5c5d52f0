"""What the CLI prints to a terminal carries no raw control character (finding 5): a revision
message stored before the model refused them (or an engine's message, a banner...) is shown
escaped by ``bascule history``, ``show-revision``, the tables and the error lines, and a new
one is refused at the door (over the unix socket, as over HTTPS)."""

from __future__ import annotations

import json

from test_cli_remote import Served, error, local, ok, remote, served  # noqa: F401 (the fixture)

from bascule.cli import output

HOSTILE = "fix\x1b]0;pwned\x07\x1b[2J\nrevision 99 by admin\x9b31m"
RAW = ("\x1b", "\x07", "\x9b")


def store_hostile_revision(served: Served) -> int:  # noqa: F811
    """A revision whose message and author hold control characters, as a store written before
    the rule holds them (the store itself takes any text)."""
    store = served.services.config.store
    head = store.head()
    assert head is not None
    document = dict(head.document)
    document["virtual_services"] = [
        {**document["virtual_services"][0], "port": 81},
    ]
    revision = store.commit(document, base=head.number, author="eve\x1b[8m", message=HOSTILE)
    return revision.number


def test_history_shows_control_characters_escaped(served: Served) -> None:  # noqa: F811
    number = store_hostile_revision(served)
    for out in (
        ok(local(served, "history")),
        ok(local(served, "show-revision", str(number))),
        ok(remote(served, "viewer", "history")),
    ):
        assert not any(character in out for character in RAW)
        assert "\\x1b]0;pwned" in out and "\\x1b[2J" in out and "\\x9b31m" in out
        assert not any(line.lstrip().startswith("revision 99") for line in out.splitlines())
    as_json = ok(local(served, "--json", "history"))
    assert not any(character in as_json for character in RAW)
    assert json.loads(as_json)["items"][0]["message"] == HOSTILE


def test_a_new_message_with_a_control_character_is_refused(served: Served) -> None:  # noqa: F811
    before = served.services.config.store.head_number()
    document = ok(local(served, "export")).replace("port: 80", "port: 82")
    for refused in (
        local(served, "apply", "-f", "-", "-m", "x\x1b[2J", input=document),
        remote(served, "admin", "apply", "-f", "-", "-m", "x\x1b[2J", input=document),
    ):
        message = error(refused)
        assert "message: must not contain control characters" in message
        assert "\x1b" not in message
    assert served.services.config.store.head_number() == before


def test_clean_shows_every_control_character() -> None:
    assert (
        output.clean("a\x1b[2Jb\n\t\x00\x7f\x9b\u202e") == "a\\x1b[2Jb\\n\\t\\x00\\x7f\\x9b\\u202e"
    )
    assert output.clean("plain é [x]") == "plain é [x]"
