"""Headless Chromium (Debian's `chromium`) driven through Playwright, for the report-page tests.

Opens a page from file://, records console messages, page errors and every request, so tests can
assert no error and no remote resource. Tests using it skip where Chromium or Playwright is absent.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Headless, no sandbox (tests run as root in CI), nothing that would reach the network by itself.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


@dataclass
class OpenedPage:
    page: object  # playwright.sync_api.Page
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    errors: list[str] = field(default_factory=list)  # uncaught exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for

    def failed(self, url: str, reason: str | None) -> None:
        if reason != "net::ERR_ABORTED":  # a media element cancels its preload request when it has enough
            self.errors.append(f"failed to load {url[:120]}: {reason}")

    @property
    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, failed loads and remote requests: all should be empty."""
        remote = [f"remote request {url}" for url in self.requests if not url.startswith(LOCAL_SCHEMES)]
        return [f"console {kind}: {text}" for kind, text in self.console if kind == "error"] + self.errors + remote


class Browser:
    """One Chromium for a test module; `open(path)` gives a fresh tab each time."""

    def __init__(self, profile: Path):
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self.context = self._playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 800})

    def open(self, path: Path, width: int = 1280, height: int = 800) -> OpenedPage:
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        opened = OpenedPage(page)
        page.on("console", lambda message: opened.console.append((message.type, message.text)))
        page.on("pageerror", lambda error: opened.errors.append(f"page error: {error}"))
        page.on("requestfailed", lambda request: opened.failed(request.url, request.failure))
        page.on("request", lambda request: opened.requests.append(request.url))
        page.goto(Path(path).resolve().as_uri(), wait_until="load")
        return opened

    def close(self) -> None:
        self.context.close()
        self._playwright.stop()
