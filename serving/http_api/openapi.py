"""The OpenAPI 3.1 description of the HTTP API, derived from the service descriptor: a path per method, and a JSON
Schema per message in protobuf's JSON mapping (lowerCamelCase names; 64-bit integers as strings; bytes as base64;
enums by name), with the bearer token and the error body (:mod:`serving.http_api.status`)."""
from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor

from serving.http_api.status import DETAIL_TYPES

F = FieldDescriptor
SCALARS = {
    F.TYPE_DOUBLE: {"type": "number"}, F.TYPE_FLOAT: {"type": "number"}, F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_STRING: {"type": "string"}, F.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    F.TYPE_INT32: {"type": "integer", "format": "int32"}, F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    F.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    F.TYPE_FIXED32: {"type": "integer", "format": "int32", "minimum": 0},
    **{kind: {"type": "string", "format": "int64"} for kind in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64,
                                                                F.TYPE_UINT64, F.TYPE_FIXED64)},
}
WELL_KNOWN = {"google.protobuf.Duration": {"type": "string", "description": "seconds with the suffix s, e.g. 1.5s"}}
ERROR = "Error"


def path(service: ServiceDescriptor, method: MethodDescriptor) -> str:
    """The route of ``method``: ``/strata.v1.Strata/SearchVideos`` (its gRPC path)."""
    return f"/{service.full_name}/{method.name}"


def _ref(message: Descriptor) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{message.full_name}"}


def _field(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.type == F.TYPE_ENUM:
        one = {"type": "string", "enum": [value.name for value in field.enum_type.values]}
    elif field.type == F.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry:
            return {"type": "object", "additionalProperties": _field(field.message_type.fields_by_name["value"], schemas)}
        one = _message(field.message_type, schemas)
    else:
        one = dict(SCALARS[field.type])
    return {"type": "array", "items": one} if field.is_repeated else one


def _message(message: Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    """A reference to ``message``'s schema, added to ``schemas`` with every message it holds."""
    if message.full_name in WELL_KNOWN:
        return dict(WELL_KNOWN[message.full_name])
    if message.full_name not in schemas:
        schema: dict[str, Any] = {"type": "object", "properties": {}}
        schemas[message.full_name] = schema
        for field in message.fields:
            schema["properties"][field.json_name] = _field(field, schemas)
        choices = [o for o in message.oneofs if len(o.fields) > 1 or not o.name.startswith("_")]
        if choices:
            schema["description"] = "; ".join(f"at most one of {', '.join(f.json_name for f in o.fields)}"
                                              for o in choices)
    return _ref(message)


def _error(schemas: dict[str, Any]) -> dict[str, Any]:
    details = [{"allOf": [_message(kind.DESCRIPTOR, schemas),
                          {"properties": {"@type": {"const": f"type.googleapis.com/{kind.DESCRIPTOR.full_name}"}}}]}
               for kind in DETAIL_TYPES]
    return {"type": "object", "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "integer", "description": "the HTTP status code"},
        "status": {"type": "string", "description": "the gRPC status code's name, e.g. INVALID_ARGUMENT"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"oneOf": details}}}}}}


def document(service: ServiceDescriptor, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI document of every method of ``service``."""
    schemas: dict[str, Any] = {}
    paths = {}
    for method in service.methods:
        request = _message(method.input_type, schemas)
        if method.client_streaming:   # a stream of messages: a JSON list of them (one object is a stream of one)
            request = {"oneOf": [request, {"type": "array", "items": request}]}
        paths[path(service, method)] = {"post": {
            "operationId": method.name,
            "summary": f"{'a list of ' if method.client_streaming else ''}{method.input_type.name} -> "
                       f"{method.output_type.name}",
            "requestBody": {"required": False, "content": {"application/json": {"schema": request}}},
            "responses": {
                "200": {"description": method.output_type.name,
                        "content": {"application/json": {"schema": _message(method.output_type, schemas)}}},
                "default": {"description": "the gRPC status, its message and google.rpc details",
                            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR}"}}}}},
        }}
    schemas[ERROR] = _error(schemas)
    return {"openapi": "3.1.0",
            "info": {"title": title, "version": version,
                     "description": f"{service.full_name} over HTTP/JSON: POST a request message as JSON (protobuf's "
                                    f"JSON mapping) to /{service.full_name}/<Method>."},
            "paths": paths,
            "components": {"schemas": schemas,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{}, {"bearer": []}]}
