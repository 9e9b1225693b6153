"""``strata.v1`` only grows: the proto compared, element by element, against the committed descriptor baseline.

``baseline.binpb`` beside the proto is a ``FileDescriptorSet`` of ``strata.v1`` as released. A change is breaking
when a client built against the baseline could misread or fail against the new proto: a message, field, enum,
enum value, service or method removed; a field renumbered, renamed, retyped or relabelled (singular/repeated,
``optional``), or moved in or out of a ``oneof``; an enum value renumbered; a method's request, response or
streaming changed; a reserved number or name no longer reserved; the package or syntax changed. Adding messages,
fields, values and methods is compatible. A breaking change needs a new package (``strata.v2``), not an edit.

``python -m serving.proto.compat`` lists the breaking changes of the proto against the baseline (exit 1 if any);
``--update`` then records the proto as the new baseline, which is refused while anything breaks.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

from serving.proto.generate import PROTO, ROOT

BASELINE = ROOT / PROTO.parent / "baseline.binpb"

_Message = descriptor_pb2.DescriptorProto
_Enum = descriptor_pb2.EnumDescriptorProto
_Field = descriptor_pb2.FieldDescriptorProto


def current() -> descriptor_pb2.FileDescriptorProto:
    """The proto as it is now, compiled by protoc (grpcio-tools)."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "strata.binpb"
        if protoc.main(["protoc", f"-I{ROOT}", f"--descriptor_set_out={out}", str(ROOT / PROTO)]) != 0:
            raise RuntimeError(f"protoc failed on {PROTO}")
        return _only_file(out.read_bytes(), out)


def baseline(path: Path = BASELINE) -> descriptor_pb2.FileDescriptorProto:
    if not path.is_file():
        raise FileNotFoundError(f"no API baseline at {path}: record one with `python -m serving.proto.compat --update`")
    return _only_file(path.read_bytes(), path)


def _only_file(data: bytes, where: Path) -> descriptor_pb2.FileDescriptorProto:
    files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    if len(files) != 1:
        raise ValueError(f"{where}: expected the descriptor of one file, found {len(files)}")
    return files[0]


def breaking_changes(old: descriptor_pb2.FileDescriptorProto, new: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """Every change from ``old`` to ``new`` that breaks a client built against ``old`` (empty: compatible)."""
    out: list[str] = []
    for attr in ("package", "syntax"):
        if getattr(old, attr) != getattr(new, attr):
            out.append(f"{attr} changed from {getattr(old, attr)!r} to {getattr(new, attr)!r}")
    _each("message", old.message_type, new.message_type, old.package, out, _message)
    _each("enum", old.enum_type, new.enum_type, old.package, out, _enum)
    new_services = {s.name: s for s in new.service}
    for service in old.service:
        name = f"{old.package}.{service.name}"
        if service.name not in new_services:
            out.append(f"service {name} removed")
            continue
        methods = {m.name: m for m in new_services[service.name].method}
        for method in service.method:
            if method.name not in methods:
                out.append(f"method {name}.{method.name} removed")
                continue
            now = methods[method.name]
            for attr in ("input_type", "output_type", "client_streaming", "server_streaming"):
                if getattr(method, attr) != getattr(now, attr):
                    out.append(f"method {name}.{method.name}: {attr} changed from {getattr(method, attr)!r} to "
                               f"{getattr(now, attr)!r}")
    return out


def _each(kind: str, old, new, scope: str, out: list[str], compare) -> None:
    """``compare`` each old message or enum with the new one of its name; a missing one is a removal."""
    new_by_name = {item.name: item for item in new}
    for item in old:
        name = f"{scope}.{item.name}"
        if item.name not in new_by_name:
            out.append(f"{kind} {name} removed")
            continue
        compare(item, new_by_name[item.name], name, out)


def _message(old: _Message, new: _Message, name: str, out: list[str]) -> None:
    by_number = {f.number: f for f in new.field}
    by_name = {f.name: f for f in new.field}
    for field in old.field:
        what = f"field {name}.{field.name} = {field.number}"
        now = by_number.get(field.number)
        if now is None:
            moved = by_name.get(field.name)
            out.append(f"{what} renumbered to {moved.number}" if moved is not None else f"{what} removed")
            continue
        if now.name != field.name:
            out.append(f"{what} renamed to {now.name}")
        if (now.type, now.type_name) != (field.type, field.type_name):
            out.append(f"{what}: type changed from {_type(field)} to {_type(now)}")
        if now.label != field.label or now.proto3_optional != field.proto3_optional:
            out.append(f"{what}: label changed from {_label(field)} to {_label(now)}")
        if _oneof(old, field) != _oneof(new, now):
            out.append(f"{what}: oneof changed from {_oneof(old, field)!r} to {_oneof(new, now)!r}")
    _reserved("message", old, new, name, out, inclusive=False)
    _each("message", old.nested_type, new.nested_type, name, out, _message)
    _each("enum", old.enum_type, new.enum_type, name, out, _enum)


def _enum(old: _Enum, new: _Enum, name: str, out: list[str]) -> None:
    values = {v.name: v.number for v in new.value}
    for value in old.value:
        if value.name not in values:
            out.append(f"enum value {name}.{value.name} = {value.number} removed")
        elif values[value.name] != value.number:
            out.append(f"enum value {name}.{value.name} renumbered from {value.number} to {values[value.name]}")
    _reserved("enum", old, new, name, out, inclusive=True)


def _reserved(kind: str, old, new, name: str, out: list[str], inclusive: bool) -> None:
    """Reserved numbers and names of ``old`` that ``new`` no longer reserves."""
    for start, end in _unreserved(old.reserved_range, new.reserved_range, inclusive):
        numbers = f"{start}" if end == start else f"{start} to {end}"
        out.append(f"{kind} {name}: reserved number(s) {numbers} no longer reserved")
    for reserved in sorted(set(old.reserved_name) - set(new.reserved_name)):
        out.append(f"{kind} {name}: reserved name {reserved!r} no longer reserved")


def _unreserved(old, new, inclusive: bool) -> list[tuple[int, int]]:
    """The reserved ranges of ``old`` (as first, last number) that ``new``'s ranges do not wholly cover (however
    they are split or merged); message ranges end exclusively, enum ranges inclusively."""
    last = (lambda r: r.end) if inclusive else (lambda r: r.end - 1)
    covered: list[list[int]] = []
    for first, end in sorted((r.start, last(r)) for r in new):
        if covered and first <= covered[-1][1] + 1:
            covered[-1][1] = max(covered[-1][1], end)
        else:
            covered.append([first, end])
    return [(r.start, last(r)) for r in old
            if not any(lo <= r.start and last(r) <= hi for lo, hi in covered)]


def _type(field: _Field) -> str:
    return field.type_name.lstrip(".") or _Field.Type.Name(field.type).removeprefix("TYPE_").lower()


def _label(field: _Field) -> str:
    return "optional" if field.proto3_optional else _Field.Label.Name(field.label).removeprefix("LABEL_").lower()


def _oneof(message: _Message, field: _Field) -> str:
    """The real oneof ``field`` belongs to ('' for none; a proto3 ``optional`` field's synthetic one counts as none)."""
    if not field.HasField("oneof_index") or field.proto3_optional:
        return ""
    return message.oneof_decl[field.oneof_index].name


def main(argv: list[str]) -> int:
    new = current()
    old = new if "--update" in argv and not BASELINE.is_file() else baseline()   # the first baseline
    broken = breaking_changes(old, new)
    for line in broken:
        print(f"breaking: {line}", file=sys.stderr)
    if broken:
        print(f"{PROTO} breaks strata.v1 against {BASELINE.name}: undo these changes (only additions are allowed; "
              f"a breaking change needs strata.v2)", file=sys.stderr)
        return 1
    if "--update" in argv:
        BASELINE.write_bytes(descriptor_pb2.FileDescriptorSet(file=[new]).SerializeToString(deterministic=True))
        print(f"recorded {BASELINE.relative_to(ROOT)}")
    else:
        print(f"{PROTO} is compatible with {BASELINE.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
