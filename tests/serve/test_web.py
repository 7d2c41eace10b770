"""The chat page in a real headless Chromium (Debian ``chromium`` driven by Playwright)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # bypass_csp: the test's own probes evaluate JavaScript; it also means the XSS test below shows
    # that escaping alone keeps the answer inert (the CSP header is a second, separately checked layer)
    ctx = browser.new_context(viewport={"width": 1200, "height": 800}, locale="vi-VN", bypass_csp=True)
    pg = ctx.new_page()
    blocked = []
    pg.on("request", lambda r: blocked.append(r.url) if not r.url.startswith("http://127.0.0.1") else None)
    yield pg
    ctx.close()
    assert not blocked, f"the page asked for something off this server: {blocked}"  # works offline, no CDN


def _ask(page, text: str) -> None:
    page.fill("#input", text)
    page.click("#send")


def _last_answer(page):
    return page.locator(".msg.assistant").last


def test_streamed_vietnamese_chat_with_history_and_stop(server, page):
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model').textContent === 'tiny'")
    page.fill("#max-tokens", "24")
    page.fill("#temperature", "0")
    page.evaluate("""() => { window.__updates = 0;
        new MutationObserver(() => window.__updates++).observe(document.getElementById('messages'),
            {subtree: true, childList: true, characterData: true}); }""")
    question = "Thủ đô của Việt Nam là gì? Hãy trả lời bằng tiếng Việt."
    _ask(page, question)
    page.wait_for_selector(".msg.assistant[data-done='1']", timeout=30_000)
    assert page.locator(".msg.user").first.inner_text() == question
    first = _last_answer(page).inner_text()
    assert first.strip()
    assert page.evaluate("window.__updates") >= 3  # the answer arrived in pieces
    _ask(page, "Còn thành phố lớn nhất?")  # a second turn: history goes with it
    page.wait_for_function("document.querySelectorAll(\".msg.assistant[data-done='1']\").length === 2", timeout=30_000)
    assert page.locator(".msg.user").count() == 2

    page.fill("#max-tokens", "1500")  # a long answer, stopped by the user
    _ask(page, "Viết một bài văn thật dài.")
    page.wait_for_function("document.querySelectorAll('.msg.assistant').length === 3 && "
                           "document.querySelectorAll('.msg.assistant')[2].textContent.length > 5", timeout=30_000)  # fmt: skip
    page.click("#stop")
    page.wait_for_function("document.getElementById('status').textContent === 'đã dừng'", timeout=10_000)
    assert page.locator("#send").is_enabled() and page.locator("#stop").is_disabled()
    deadline = time.monotonic() + 20
    while httpx.get(server.url + "/health", timeout=5).json()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(server.url + "/health", timeout=5).json()["in_flight"] == 0  # the server stopped generating
    stopped = _last_answer(page).inner_text()
    assert 0 < len(stopped) < 3000


def test_rag_toggle_shows_linked_passages(server, page):
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model').textContent === 'tiny'")
    page.fill("#max-tokens", "8")
    page.check("#rag")
    _ask(page, "Đồng bằng sông Cửu Long được bồi đắp bởi gì?")
    page.wait_for_selector(".msg.assistant[data-done='1']", timeout=30_000)
    items = page.locator(".passages li")
    assert items.count() == 5
    assert "Cửu Long" in items.first.inner_text()
    assert items.first.get_attribute("id") == "p-1-0"  # the target of a "[đoạn 0]" link
    shot = os.environ.get("VINAFORGE_SCREENSHOT")
    if shot:
        page.screenshot(path=shot)


def test_html_in_a_model_answer_never_runs(make_server, taught_model_dir, page):
    from vinaforge.generate.local import LocalBackend
    from vinaforge.serve.api import create_app
    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.engines import LocalEngine
    from vinaforge.serve.server import ServerThread

    cfg = ServeConfig(model=str(taught_model_dir), served_name="taught", port=0, api_key_env="VINAFORGE_TEST_NO_KEY")
    with ServerThread(create_app(cfg, LocalEngine(LocalBackend(str(taught_model_dir)))), cfg) as s:
        page.goto(s.url + "/")
        page.wait_for_function("document.getElementById('model').textContent === 'taught'")
        page.fill("#temperature", "0")
        page.fill("#max-tokens", "64")
        _ask(page, "Xin chào")
        page.wait_for_selector(".msg.assistant[data-done='1']", timeout=30_000)
        answer = _last_answer(page)
        assert "<script>window.__pwned=2</script>" in answer.inner_text()  # shown as text…
        assert page.evaluate("window.__pwned") is None  # …and never run
        assert answer.locator("img, script").count() == 0
        assert answer.locator("strong").inner_text() == "an toàn"  # the Markdown subset still renders
        assert 'onerror="window.__pwned=1"' in answer.inner_text()
        csp = httpx.get(s.url + "/", timeout=5).headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    shutil.rmtree(taught_model_dir, ignore_errors=True)
