"""The page at / in headless Chromium: pick a file, submit, and the report page replaces it; with a
key, the key typed in the page is sent, and a wrong one is shown as the server's message."""

from __future__ import annotations

import pytest
from support.browser import CHROMIUM, Browser
from support.fake_server import phrase_file
from support.serving import Serving

from moss_cli.serve.http import ServeSettings

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opened = Browser(tmp_path_factory.mktemp("profile"))
    yield opened
    opened.close()


def test_the_page_uploads_and_shows_the_report(browser, remote_worker, tmp_path):
    path, truth = phrase_file(tmp_path / "talk.wav", 10.0, seed=1)
    with Serving(remote_worker, ServeSettings(api_key="k3y")) as serving:
        page = browser.context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(serving.url + "/")
        page.set_input_files("#file", str(path))
        page.fill("#key", "wrong")
        page.click("button[type=submit]")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Error')")
        assert "a valid API key is needed" in page.text_content("#status")
        page.fill("#key", "k3y")
        page.select_option("#task", "transcribe")
        page.click("button[type=submit]")
        page.wait_for_function("!document.getElementById('upload')", timeout=30_000)
        shown = page.inner_text("body")  # rendered by the report page's own script, not only its data
        page.close()
    assert all(f"phrase {p.index}." in shown for p in truth) and "talk.wav" in shown
    assert errors == []
