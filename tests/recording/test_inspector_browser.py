"""The inspector in a real browser: Playwright driving Debian's Chromium against ``shim serve
--inspector`` (a real socket, uvicorn and the CLI's settings) over the scripted Chat upstream.

The page asks for a shim key (``api_keys`` is set), lists the exchange the test made, shows its
four panes (the upstream bytes boxed chunk by chunk, as the socket delivered them) and its
diagnostics, and "Save as case" writes a folder that ``shim fixtures check`` passes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shim.cli import main
from tests.support.processes import ROOT, Served, serve_script, serve_shim
from tests.support.real_components import chromium_executable

KEY = "sk-inspector-test-key-0123456789"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    upstream = serve_script(
        ROOT / "tests" / "support" / "scripted_chat.py", tmp_path / "upstream.log", what="scripted upstream"
    )
    try:
        shim = serve_shim(
            tmp_path,
            "--upstream",
            upstream.base_url,
            "--dialect",
            "openai",
            "--inspector",
            env={"SHIM_API_KEYS": KEY, "SHIM_SECRET": "inspector-test-secret-0123456789abcdef"},
        )
        try:
            yield shim, tmp_path / "data" / "inspector-cases"
        finally:
            shim.stop()
    finally:
        upstream.stop()


def test_inspector_in_a_browser(served: tuple[Served, Path], capsys: pytest.CaptureFixture[str]) -> None:
    chromium = chromium_executable()
    from playwright.sync_api import expect, sync_playwright

    shim, saved_root = served
    base = shim.base_url.removesuffix("/v1")
    body = {"model": "m", "input": "Hello inspector", "stream": True, "prompt_cache_retention": "24h"}
    answer = httpx.post(f"{shim.base_url}/responses", json=body, headers={"authorization": f"Bearer {KEY}"})
    assert answer.status_code == 200 and "response.completed" in answer.text
    assert httpx.get(f"{base}/inspector").status_code == 401  # no key, no exchanges

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{base}/inspector")
            page.fill("#key", KEY)
            page.click("#login")
            rows = page.locator("#exchanges tr.exchange")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("/v1/responses")
            expect(rows.first).to_contain_text("responses_over_chat")
            expect(rows.first).to_contain_text("dropped_param:prompt_cache_retention")
            rows.first.locator("a").click()

            for pane, text in (
                ("#client-request", "Hello inspector"),
                ("#upstream-request", '"stream": true'),
                ("#upstream-bytes", "chat.completion.chunk"),
                ("#client-events", "response.output_text.delta"),
            ):
                expect(page.locator(pane)).to_be_visible()
                expect(page.locator(pane)).to_contain_text(text)
            # Side by side: four panes on one row.
            tops = {round(page.locator(p).bounding_box()["y"]) for p in ("#client-request", "#client-events")}  # type: ignore[index]
            assert len(tops) == 1
            chunks = page.locator("#upstream-bytes .chunk").count()
            assert chunks >= 1
            expect(page.locator("#upstream-bytes .chunk").first).to_contain_text("chunk 1 ·")
            expect(page.locator("#upstream-request")).not_to_contain_text(KEY)
            diagnostics = page.locator("#diagnostics.diagnostics")
            expect(diagnostics).to_contain_text("dropped_param:prompt_cache_retention")
            assert diagnostics.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"

            page.click("#save")
            saved = Path(page.locator("#saved-path").inner_text())
        finally:
            browser.close()

    assert saved.is_relative_to(saved_root) and (saved / "request.json").is_file()
    assert json.loads((saved / "request.json").read_bytes())["input"] == "Hello inspector"
    assert len(json.loads((saved / "upstream.chunks.json").read_bytes())) == chunks  # one box per chunk
    capsys.readouterr()
    assert main(["fixtures", "check", str(saved)]) == 0
    assert "1 cases, 0 differ" in capsys.readouterr().out
