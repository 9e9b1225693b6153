"""``python -m serving.gateway``: run the gateway in the foreground (``strata up`` starts it this way)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (structured logs)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def main(argv: list[str] | None = None) -> int:
    from common.errors import StrataError
    from common.settings import load_settings
    from serving.gateway.server import serve

    parser = argparse.ArgumentParser(prog="python -m serving.gateway", description="Run the Strata gRPC gateway.")
    parser.add_argument("--port", type=int, help="gRPC port (0: any free port; default: the gateway_port setting)")
    parser.add_argument("--metrics-port", type=int, help="metrics port (0: any free port)")
    parser.add_argument("--model", help="model to serve when no version is active yet (default: the model setting)")
    parser.add_argument("--ready-file", help="write the bound ports here (JSON) once serving")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        settings = load_settings({"gateway_port": args.port, "gateway_metrics_port": args.metrics_port,
                                  "model": args.model})
        serve(settings, args.ready_file)
    except StrataError as err:
        print(f"strata gateway: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
