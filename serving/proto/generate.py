"""Regenerate the committed Python stubs of ``strata/v1/strata.proto`` (run after editing the proto).

``python -m serving.proto.generate`` writes ``strata_pb2.py``, ``strata_pb2.pyi`` and ``strata_pb2_grpc.py`` beside
the proto, with grpcio-tools (pinned in the ``test`` extra, so a test can regenerate them and fail when the
committed ones are stale). The proto is compiled from the project root, so the stubs import each other as
``serving.proto.strata.v1``.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = Path("serving/proto/strata/v1/strata.proto")
STUBS = ("strata_pb2.py", "strata_pb2.pyi", "strata_pb2_grpc.py")


def generate(out: Path = ROOT) -> list[Path]:
    """Compile the proto into ``out`` (the project root, or a scratch root for the staleness check)."""
    from grpc_tools import protoc

    args = ["protoc", f"-I{ROOT}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", str(ROOT / PROTO)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    return [out / PROTO.parent / name for name in STUBS]


if __name__ == "__main__":
    for path in generate():
        print(f"wrote {path.relative_to(ROOT)}")
    sys.exit(0)
