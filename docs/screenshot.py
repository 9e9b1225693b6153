"""Renew docs/search-page.png from a running stack (the README's is from `strata demo --keep-running`):

    .venv/bin/python docs/screenshot.py "a man is cooking in a kitchen"

Types the sentence into the search page, opens the captions of the first video, and saves the page. Needs the
browser test's tools (Debian's chromium and chromium-driver, and selenium from the test extra).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WAIT_S = 60


def main() -> int:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.wait import WebDriverWait

    from common.connect import http_api_url
    from tests.serving.http_api.browser import chromium

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("query", help="the sentence to search for")
    parser.add_argument("--url", default="", help="the search page (default: the running local HTTP API's)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("search-page.png")))
    args = parser.parse_args()
    with chromium() as driver:
        wait = WebDriverWait(driver, WAIT_S)
        driver.get(f"{args.url or http_api_url()}/")
        wait.until(lambda d: d.find_element("id", "status").text.startswith("Model "))
        driver.find_element("id", "query").send_keys(args.query, Keys.ENTER)
        first = wait.until(lambda d: d.find_elements("css selector", "#videos li.hit button.video"))[0]
        first.click()
        wait.until(lambda d: d.find_elements("css selector", "#captions li.caption"))
        if not driver.save_screenshot(args.out):
            print(f"could not save {args.out}", file=sys.stderr)
            return 1
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
