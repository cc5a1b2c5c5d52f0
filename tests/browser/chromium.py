"""Debian's Chromium for the browser tests, and where their screenshots go.

Playwright launches `/usr/bin/chromium` (the Debian package `setup.sh --dev` installs), never
a browser of its own download. Screenshots of the pages land in artifacts/screenshots/ (test
artifacts, git-ignored) and, when BASCULE_UPDATE_SCREENSHOTS=1, in docs/images/ as well, where
the user guide shows them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
DOC_IMAGES = REPO / "docs" / "images"
VIEWPORT = {"width": 1280, "height": 800}


def save_screenshot(page: Any, name: str, *, parts: tuple[Any, ...] = ()) -> Path:
    """Save `name` (e.g. "dashboard.png") as a test artifact, and for the docs when asked:
    the whole page, or only the area from the first of `parts` (locators) to the last."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    if parts:
        boxes = [part.bounding_box() for part in parts]
        scroll = page.evaluate("() => [window.scrollX, window.scrollY]")
        left = min(box["x"] for box in boxes) - 8
        top = min(box["y"] for box in boxes) - 8
        right = max(box["x"] + box["width"] for box in boxes) + 8
        bottom = max(box["y"] + box["height"] for box in boxes) + 8
        clip = {
            "x": max(left + scroll[0], 0),
            "y": max(top + scroll[1], 0),
            "width": right - left,
            "height": bottom - top,
        }
        page.screenshot(path=str(path), full_page=True, clip=clip)
    else:
        page.screenshot(path=str(path), full_page=True)
    if os.environ.get("BASCULE_UPDATE_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / name)
    return path
