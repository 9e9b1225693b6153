"""``strata.v1`` only grows: the proto against the committed descriptor baseline (``serving/proto/compat.py``)."""
from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2

from serving.proto.compat import BASELINE, baseline, breaking_changes, current

_F = descriptor_pb2.FieldDescriptorProto


@pytest.fixture(scope="module")
def released():
    return baseline()


def _copy(proto):
    return type(proto).FromString(proto.SerializeToString())


def _message(file, name):
    return next(m for m in file.message_type if m.name == name)


def _field(message, name):
    return next(f for f in message.field if f.name == name)


def test_the_proto_keeps_every_element_of_the_committed_baseline(released):
    broken = breaking_changes(released, current())
    assert broken == [], (f"strata.proto breaks strata.v1 against {BASELINE.name}: {broken}; undo them (a breaking "
                          f"change needs strata.v2)")


def test_the_baseline_is_the_released_api(released):
    """What the baseline holds is what clients were built against: the package, the service and its methods."""
    assert released.package == "strata.v1"
    methods = {m.name for m in released.service[0].method}
    assert {"SearchVideos", "SearchCaptions", "IndexVideos", "IndexCaptions", "Delete", "Describe"} <= methods
    describe = _message(released, "DescribeResponse")
    assert {n for r in describe.reserved_range for n in range(r.start, r.end)} == {6, 7, 8}


def _remove_field(f):
    hit = _message(f, "Hit")
    hit.field.remove(_field(hit, "score"))


def _renumber(f):
    _field(_message(f, "Hit"), "score").number = 99


def _rename(f):
    _field(_message(f, "Hit"), "score").name = "fused"


def _retype(f):
    _field(_message(f, "Hit"), "score").type = _F.TYPE_DOUBLE


def _relabel(f):
    _field(_message(f, "Tensor"), "shape").label = _F.LABEL_OPTIONAL


def _remove_message(f):
    f.message_type.remove(_message(f, "FileError"))


def _unreserve(f):
    describe = _message(f, "DescribeResponse")
    del describe.reserved_range[:]


def _merge_reserved(f):
    describe = _message(f, "DescribeResponse")
    del describe.reserved_range[:]
    describe.reserved_range.add(start=6, end=9)   # 6, 7 and 8 as one range: still reserved


def _unreserve_name(f):
    describe = _message(f, "DescribeResponse")
    describe.reserved_name.remove("milvus_uri")


def _remove_method(f):
    service = f.service[0]
    service.method.remove(next(m for m in service.method if m.name == "Delete"))


def _stream_change(f):
    next(m for m in f.service[0].method if m.name == "IndexCaptions").client_streaming = True


def _request_change(f):
    next(m for m in f.service[0].method if m.name == "Delete").input_type = ".strata.v1.DescribeRequest"


def _remove_enum_value(f):
    enum = next(e for e in f.enum_type if e.name == "ItemKind")
    enum.value.remove(next(v for v in enum.value if v.name == "ITEM_KIND_CAPTION"))


def _renumber_enum_value(f):
    enum = next(e for e in f.enum_type if e.name == "ItemKind")
    next(v for v in enum.value if v.name == "ITEM_KIND_CAPTION").number = 7


def _package(f):
    f.package = "strata.v2"


@pytest.mark.parametrize("edit, expected", [
    (_remove_field, "field strata.v1.Hit.score = 2 removed"),
    (_renumber, "field strata.v1.Hit.score = 2 renumbered to 99"),
    (_rename, "field strata.v1.Hit.score = 2 renamed to fused"),
    (_retype, "field strata.v1.Hit.score = 2: type changed from float to double"),
    (_relabel, "field strata.v1.Tensor.shape = 1: label changed from repeated to optional"),
    (_remove_message, "message strata.v1.FileError removed"),
    (_unreserve, "message strata.v1.DescribeResponse: reserved number(s) 7 no longer reserved"),
    (_unreserve_name, "message strata.v1.DescribeResponse: reserved name 'milvus_uri' no longer reserved"),
    (_remove_method, "method strata.v1.Strata.Delete removed"),
    (_stream_change, "method strata.v1.Strata.IndexCaptions: client_streaming changed from False to True"),
    (_request_change, "method strata.v1.Strata.Delete: input_type changed from '.strata.v1.DeleteRequest' to "
                      "'.strata.v1.DescribeRequest'"),
    (_remove_enum_value, "enum value strata.v1.ItemKind.ITEM_KIND_CAPTION = 2 removed"),
    (_renumber_enum_value, "enum value strata.v1.ItemKind.ITEM_KIND_CAPTION renumbered from 2 to 7"),
    (_package, "package changed from 'strata.v1' to 'strata.v2'"),
], ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else "")
def test_a_breaking_edit_of_the_descriptor_is_caught_and_named(released, edit, expected):
    assert "score" in {f.name for f in _message(released, "Hit").field}   # the edits act on the real API
    edited = _copy(released)
    edit(edited)
    assert expected in breaking_changes(released, edited)


def test_additions_are_compatible(released):
    grown = _copy(released)
    hit = _message(grown, "Hit")
    hit.field.add(name="rank", number=max(f.number for f in hit.field) + 1, type=_F.TYPE_INT32, label=_F.LABEL_OPTIONAL,
                  json_name="rank")
    grown.message_type.add(name="Explain").field.add(name="why", number=1, type=_F.TYPE_STRING,
                                                      label=_F.LABEL_OPTIONAL)
    grown.service[0].method.add(name="Explain", input_type=".strata.v1.Explain", output_type=".strata.v1.Explain")
    next(e for e in grown.enum_type if e.name == "ItemKind").value.add(name="ITEM_KIND_CLIP", number=3)
    _merge_reserved(grown)
    assert breaking_changes(released, grown) == []
