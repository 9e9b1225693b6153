"""The search page in a real browser (headless Chromium) on the running stack: what it shows for a typed caption and
for a chosen video is what the gRPC client answers, to the last bit of every score; behind a gateway that requires
tokens, the token typed into the page goes with its calls. Each video's evidence strip shows the weights the API gives. The test saves a screenshot of the page; set
STRATA_PAGE_SCREENSHOT to a path to keep it there (the README's is docs/search-page.png)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.serving.gateway.corpus import sample_captions
from tests.serving.http_api.browser import chromium
from tests.serving.http_api.secured import READ_TOKEN, secured_api

pytestmark = pytest.mark.slow

WAIT_S = 30


@pytest.fixture(scope="module")
def page(stack):
    """The browser on the stack's search page, once its status line is drawn."""
    from common.connect import http_api_url

    with chromium() as driver:
        driver.get(f"{http_api_url(stack[0])}/")
        until(driver, connected)
        yield driver


def until(driver, condition):
    from selenium.webdriver.support.wait import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition)


def rows(driver, selector: str, count: int):
    """The elements at ``selector`` once ``count`` of them are drawn."""
    return until(driver, lambda d: (found := d.find_elements("css selector", selector)) and len(found) == count
                 and found)


def connected(driver) -> bool:
    return driver.find_element("id", "status").text.startswith("Model ")


def search(driver, text: str, count: int):
    """Type ``text`` and press Enter; the ``count`` video hits drawn."""
    from selenium.webdriver.common.keys import Keys

    query = driver.find_element("id", "query")
    query.clear()
    query.send_keys(text, Keys.ENTER)
    return rows(driver, "#videos li.hit", count)


def value(data) -> np.float32:
    """A <data> element's score: its exact value, checked against the 4 decimals it shows."""
    exact = float(data.get_attribute("value"))
    assert data.text == f"{exact:.4f}"
    return np.float32(exact)


def test_the_status_line_names_the_model_and_the_corpus(page, client):
    about = client.describe()
    status = page.find_element("id", "status").text
    assert status.startswith(f"Model {about.model.name} version {about.model.version} · ")
    assert f"{about.videos:,} videos, {about.captions:,} captions" in status


def test_a_typed_caption_shows_the_videos_the_grpc_api_ranks_with_their_level_scores(page, client):
    text = sample_captions(5)[4]
    expected = client.search_videos(text)
    hits = search(page, text, len(expected.hits))
    shown = [(hit.find_element("css selector", ".id").text, value(hit.find_element("css selector", "data.fused")),
              [(level.find_element("tag name", "dt").text, value(level.find_element("tag name", "data")))
               for level in hit.find_elements("css selector", ".level")])
             for hit in hits]
    assert shown == [(h.id, np.float32(h.score), [(lv.level, np.float32(lv.score)) for lv in h.levels])
                     for h in expected.hits]
    assert [h.find_element("css selector", ".source").text for h in hits] == [h.source for h in expected.hits]
    # the evidence strip: a row per phrase of each level that attends over frames, a cell per frame, the API's weights
    explained = client.search_videos(text, evidence=True)
    for hit, answer in zip(hits, explained.hits):
        strip = [(row.find_element("css selector", ".phrase").text,
                  [np.float32(float(cell.get_attribute("data-weight")))
                   for cell in row.find_elements("css selector", ".frame")])
                 for row in hit.find_elements("css selector", ".evidence .node")]
        assert strip == [(f"{level.level} · {node.words}", [np.float32(f.weight) for f in node.frames])
                         for level in answer.evidence if level.temporal for node in level.nodes]
        assert strip and all(cells for _, cells in strip)


def test_a_chosen_video_shows_the_captions_the_grpc_api_finds_for_it(page, client, tmp_path):
    from selenium.webdriver.common.keys import Keys

    text = sample_captions(8)[7]
    hits = search(page, text, len(client.search_videos(text).hits))
    buttons = [hit.find_element("css selector", "button.video") for hit in hits]
    for button, press in ((buttons[1], lambda b: b.send_keys(Keys.ENTER)), (buttons[0], lambda b: b.click())):
        video = button.find_element("css selector", ".id").text      # by keyboard, then by mouse
        expected = client.search_captions(video)
        press(button)
        captions = rows(page, "#captions li.caption", len(expected.hits))
        assert page.find_element("id", "captions-title").text == f"Captions of {video}"
        shown = [(c.find_element("css selector", ".text").text, value(c.find_element("tag name", "data")))
                 for c in captions]
        assert shown == [(h.text, np.float32(h.score)) for h in expected.hits]
        assert [b.get_attribute("aria-pressed") for b in buttons[:2]] == (
            ["false", "true"] if button is buttons[1] else ["true", "false"])
    screenshot = Path(os.environ.get("STRATA_PAGE_SCREENSHOT") or tmp_path / "search-page.png")
    assert page.save_screenshot(str(screenshot)), screenshot


def test_the_page_loads_and_runs_without_a_console_error(page):
    """Nothing refused by its Content-Security-Policy, no file missing, no script error (after the tests above)."""
    errors = [entry["message"] for entry in page.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors


def test_a_token_typed_into_the_page_goes_with_its_calls(stack, client, tmp_path_factory):
    from selenium.webdriver.common.keys import Keys

    text = sample_captions(3)[2]
    expected = [hit.id for hit in client.search_videos(text).hits]
    with secured_api(stack[0], tmp_path_factory.mktemp("page-pki")) as api, chromium(insecure_certs=True) as driver:
        driver.get(f"{api.url}/")
        error = until(driver, lambda d: (box := d.find_element("id", "error")).is_displayed() and box)
        assert error.text.endswith("enter a token under “Access token”.")
        assert driver.find_element("id", "access").get_attribute("open") is not None
        assert driver.find_element("id", "status").text == "Not connected."
        driver.switch_to.active_element.send_keys(READ_TOKEN, Keys.TAB)     # the page put the focus on the token
        until(driver, connected)
        assert not error.is_displayed()
        assert driver.execute_script("return sessionStorage.getItem('strata.token')") == READ_TOKEN
        hits = search(driver, text, len(expected))
        assert [hit.find_element("css selector", ".id").text for hit in hits] == expected
