"""Settings: a bad value names the setting and what it accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bascule import serve
from bascule.settings import Settings


@pytest.mark.parametrize("given", ["debug", "INFO", " warning ", "Error"])
def test_a_log_level_is_taken_in_either_case(given: str) -> None:
    assert Settings(log_level=given).log_level == given.strip().upper()


def test_an_unknown_log_level_names_the_levels() -> None:
    with pytest.raises(ValidationError, match="log_level must be one of debug, info, warning"):
        Settings(log_level="nope")


@pytest.mark.parametrize(
    ("option", "shown"),
    [
        ("--log-level=nope", "log_level must be one of debug, info, warning, error, not 'nope'"),
        ("--listen=bogus", "listen must be ADDRESS:PORT or none, not 'bogus'"),
    ],
)
def test_the_daemon_refuses_a_bad_setting_in_one_line(
    option: str,
    shown: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serve, "_name_process", lambda: None)  # the test process keeps its name
    with pytest.raises(SystemExit) as exited:
        serve.main(["--data-dir", str(tmp_path), option])
    assert exited.value.code == 1
    assert capsys.readouterr().err == f"error: bad setting: {shown}\n"
    assert not list(tmp_path.iterdir())
