"""The search page: ``GET /`` is its HTML, ``/page/`` its stylesheet, script and icon (static files in ``page/``, no build
step). The page calls the HTTP API from the browser, so it needs nothing of the app but these routes; its
Content-Security-Policy lets it load and call this origin only."""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

FILES = Path(__file__).parent / "page"
HEADERS = {"content-security-policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
           "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


class PageFiles(StaticFiles):
    """The page's stylesheet and script, with the page's headers."""

    def file_response(self, *args, **kwargs):
        response = super().file_response(*args, **kwargs)
        response.headers.update(HEADERS)
        return response


async def index(request: Request) -> FileResponse:
    return FileResponse(FILES / "index.html", headers=HEADERS)


def routes() -> list[BaseRoute]:
    return [Route("/", index, methods=["GET"]), Mount("/page", PageFiles(directory=FILES), name="page")]
