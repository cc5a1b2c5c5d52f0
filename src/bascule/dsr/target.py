"""The operating systems ``bascule dsr script`` writes for (a module of its own, with no
import, so the CLI can offer ``--os`` without loading the model)."""

from __future__ import annotations

import enum


class TargetOs(enum.StrEnum):
    linux = "linux"
    windows = "windows"
