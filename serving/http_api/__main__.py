"""``python -m serving.http_api``: run the HTTP API in the foreground (``strata up`` starts it this way)."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from common.connect import gateway_url
    from common.errors import StrataError
    from common.settings import load_settings
    from serving.http_api.server import config

    parser = argparse.ArgumentParser(prog="python -m serving.http_api",
                                     description="Run Strata's HTTP/JSON API in front of the gateway.")
    parser.add_argument("--port", type=int, help="HTTP port (default: the http_port setting)")
    parser.add_argument("--gateway", help="the gateway's host:port (default: the running gateway's, else the settings')")
    args = parser.parse_args(argv)
    try:
        settings = load_settings({"http_port": args.port})
        server = uvicorn.Server(config(settings, gateway_url(settings, args.gateway), settings.http_port))
    except StrataError as err:
        print(f"strata http api: error: {err}", file=sys.stderr)
        return 2
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
