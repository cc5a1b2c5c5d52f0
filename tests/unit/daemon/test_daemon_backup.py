"""daemon/backup.py: the backup file written and read back, bad files refused, restore."""

from __future__ import annotations

from pathlib import Path

import pytest
from change_requests import by

from bascule.daemon.backup import (
    backup_filename,
    backup_revision,
    backup_text,
    read_backup,
    restore,
)
from bascule.daemon.service import ConfigService
from bascule.daemon.vips import NullVipManager
from bascule.engines.base import FakeEngine
from bascule.errors import Conflict, InvalidConfiguration
from bascule.store.revisions import RevisionStore

DOCUMENT = {
    "virtual_services": [
        {
            "name": "web",
            "address": "198.18.0.100",
            "port": 80,
            "real_servers": [{"address": "198.18.0.4", "port": 80, "weight": 500}],
        }
    ]
}


def test_a_backup_reads_back_as_its_document() -> None:
    text = backup_text(7, DOCUMENT)
    assert text.startswith("# bascule revision 7\nvirtual_services:\n")
    assert backup_revision(text) == 7
    assert read_backup(text.encode()) == DOCUMENT
    assert backup_filename(7) == "bascule-revision-7.yaml"
    assert backup_text(None, {"virtual_services": []}).startswith("# bascule revision 0\n")


def test_json_is_a_backup_too() -> None:
    assert read_backup(b'{"virtual_services": []}') == {"virtual_services": []}
    assert backup_revision('{"virtual_services": []}') is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"\xff\xfe\x00", "not text"),
        (b"virtual_services: [\n", "not YAML or JSON"),
        (b"- a\n- b\n", "configuration document"),
        (b"a: &x [*x]\n", "contains itself"),  # aliases are bounded (bascule.safeyaml)
        (b"when: 2024-01-01\n", "values a configuration cannot"),
    ],
)
def test_unreadable_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidConfiguration) as caught:
        read_backup(data)
    [error] = caught.value.errors
    assert error.path == "" and message in error.message


async def test_restore_is_a_new_revision_and_checks_its_base(tmp_path: Path) -> None:
    with RevisionStore(tmp_path / "bascule.db") as store:
        service = ConfigService(store=store, engines=[FakeEngine()], vips=NullVipManager())
        await service.apply({"virtual_services": []}, by("t"))
        planned = await restore(service, DOCUMENT, by("a", base=1, dry_run=True))
        assert planned.changed and store.head_number() == 1
        done = await restore(service, DOCUMENT, by("a", remote="198.18.0.9", base=1))
        assert done.revision == 2 and done.applied
        head = store.head()
        assert head is not None and head.message == "restore from backup"
        with pytest.raises(Conflict):
            await restore(service, {"virtual_services": []}, by("a", base=1))
