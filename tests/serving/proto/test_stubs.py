"""The committed gRPC stubs are what grpcio-tools generates from the proto now (edit the proto, then run
``python -m serving.proto.generate``)."""
from __future__ import annotations

from serving.proto.generate import PROTO, ROOT, generate


def test_committed_stubs_are_not_stale(tmp_path):
    for fresh in generate(tmp_path):
        committed = ROOT / PROTO.parent / fresh.name
        assert committed.read_bytes() == fresh.read_bytes(), (
            f"{committed.relative_to(ROOT)} is stale: run `python -m serving.proto.generate` and commit the result")


def test_proto_package_is_versioned():
    from serving.proto.strata.v1 import strata_pb2

    assert strata_pb2.DESCRIPTOR.package == "strata.v1"
    assert "Strata" in strata_pb2.DESCRIPTOR.services_by_name
