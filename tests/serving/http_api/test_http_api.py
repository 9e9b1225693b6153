"""The HTTP/JSON API on the running stack (`strata up` starts it in front of the gateway): the gRPC API's answers as
JSON, its statuses as HTTP codes with the google.rpc details, the callers' own tokens passed on to a gateway that
requires them, and an OpenAPI description of every method."""
from __future__ import annotations

import base64
import secrets
import ssl

import httpx
import numpy as np
import pytest
from google.protobuf import json_format

from serving.proto.strata.v1 import strata_pb2 as pb
from tests.serving.gateway.corpus import VIDEOS, corpus_videos, sample_captions
from tests.serving.http_api.secured import READ_TOKEN, WRITE_TOKEN, secured_api

pytestmark = pytest.mark.slow

SERVICE = pb.DESCRIPTOR.services_by_name["Strata"]


def post(http: httpx.Client, method: str, body, token: str = "") -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return http.post(f"/{SERVICE.full_name}/{method}", json=body, headers=headers)


def answer(response: httpx.Response, message):
    assert response.status_code == 200, response.text
    return json_format.ParseDict(response.json(), message)


def details(response: httpx.Response) -> dict[str, dict]:
    """The error body's google.rpc details by type name (BadRequest, ErrorInfo, RetryInfo)."""
    return {d["@type"].rsplit(".", 1)[1]: d for d in response.json()["error"]["details"]}


def tensor(array: np.ndarray) -> dict:
    return {"shape": list(array.shape), "data": base64.b64encode(array.astype("<f4").tobytes()).decode()}


@pytest.fixture(scope="module")
def http(stack):
    from common.connect import http_api_url

    with httpx.Client(base_url=http_api_url(stack[0]), timeout=60) as c:   # the record: a restart may move it
        yield c


def test_searches_over_http_answer_what_the_grpc_api_answers(http, client):
    text = sample_captions(3)[2]
    for method, body, expected in (
            ("SearchVideos", {"text": text, "topK": 5}, client.search_videos(text, top_k=5)),
            ("SearchCaptions", {"videoId": "vid0007", "topK": 5}, client.search_captions("vid0007", top_k=5)),
            ("ScoreVideos", {"text": text, "videoIds": ["vid0001", "vid0002"]},
             client.score_videos(text, ["vid0001", "vid0002"]))):
        got = answer(post(http, method, body), pb.SearchResponse())
        assert len(got.hits) == len(expected.hits) > 0
        assert list(got.hits) == list(expected.hits), method      # ids, scores and levels, to the last bit
        assert (got.model, got.candidates) == (expected.model, expected.candidates)
    assert answer(post(http, "Describe", None), pb.DescribeResponse()) == client.describe()


def test_streamed_index_calls_take_a_json_list_of_messages(http, client):
    videos = [(f"http{k}", frames) for k, (_, frames) in enumerate(corpus_videos(2, seed=7))]
    messages = [{"videos": [{"id": i, "features": {"frames": tensor(f)}, "source": "http"}]} for i, f in videos]
    indexed = answer(post(http, "IndexVideos", messages), pb.IndexResponse())
    assert (indexed.indexed, indexed.total) == (2, VIDEOS + 2)
    try:
        by_upload = answer(post(http, "SearchCaptions", {"features": {"frames": tensor(videos[1][1])}, "topK": 3}),
                           pb.SearchResponse())
        assert list(by_upload.hits) == list(client.search_captions(frames=videos[1][1], top_k=3).hits)
        assert client.search_captions("http1", top_k=1).hits[0].id == by_upload.hits[0].id   # indexed over HTTP
    finally:
        deleted = answer(post(http, "Delete", {"kind": "ITEM_KIND_VIDEO", "ids": ["http0", "http1"]}),
                         pb.DeleteResponse())
    assert (deleted.deleted, deleted.total) == (2, VIDEOS)


@pytest.mark.parametrize("method, body, code, status, reason", [
    ("SearchVideos", {"text": "a dog ran " * 300, "topK": 3}, 400, "INVALID_ARGUMENT", "LIMIT_EXCEEDED"),
    ("SearchCaptions", {"videoId": "no-such-video"}, 404, "NOT_FOUND", None),
    ("SearchVideos", {"txt": "a dog"}, 400, "INVALID_ARGUMENT", "MALFORMED_REQUEST"),
    ("Delete", {"kind": "ITEM_KIND_SONG"}, 400, "INVALID_ARGUMENT", "MALFORMED_REQUEST"),
])
def test_errors_carry_the_status_as_an_http_code_with_the_message_and_details(http, client, method, body, code,
                                                                             status, reason):
    response = post(http, method, body)
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["status"]) == (code, code, status), error
    assert error["message"]
    assert details(response).get("ErrorInfo", {}).get("reason") == reason
    assert client.describe().videos == VIDEOS                      # and the gateway serves on


def test_a_bad_request_names_the_field_as_the_grpc_api_does(http, client):
    from clients.client import StrataCallError

    text = "a dog ran " * 300
    response = post(http, "SearchVideos", {"text": text})
    with pytest.raises(StrataCallError) as grpc_error:
        client.search_videos(text)
    violations = details(response)["BadRequest"]["fieldViolations"]
    assert [(v["field"], v["description"]) for v in violations] == grpc_error.value.violations
    assert violations[0]["field"] == "text" and "max_text_bytes" in violations[0]["description"]
    assert details(response)["ErrorInfo"]["metadata"]["limit"] == "max_text_bytes"
    assert response.json()["error"]["message"] == grpc_error.value.details


def test_a_body_over_max_message_bytes_is_refused_unread(http, stack):
    response = http.post(f"/{SERVICE.full_name}/IndexCaptions", content=b" " * (stack[0].max_message_bytes + 1))
    assert (response.status_code, response.json()["error"]["status"]) == (413, "RESOURCE_EXHAUSTED")
    assert details(response)["ErrorInfo"]["metadata"]["limit"] == "max_message_bytes"


def test_openapi_describes_every_method_and_every_schema_it_names(http):
    described = http.get("/openapi.json").json()
    assert set(described["paths"]) == {f"/{SERVICE.full_name}/{m.name}" for m in SERVICE.methods}
    assert {op["post"]["operationId"] for op in described["paths"].values()} == {m.name for m in SERVICE.methods}
    schemas = described["components"]["schemas"]

    def refs(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    assert {ref.rsplit("/", 1)[1] for ref in refs(described)} <= set(schemas)
    request = schemas["strata.v1.SearchVideosRequest"]["properties"]
    assert set(request) == {"text", "topK", "candidateDepth", "evidence"}
    assert request["evidence"]["type"] == "boolean"
    level = schemas["strata.v1.LevelEvidence"]["properties"]
    assert level["nodes"]["items"]["$ref"].endswith("strata.v1.NodeEvidence")
    stream = described["paths"][f"/{SERVICE.full_name}/IndexVideos"]["post"]["requestBody"]
    assert stream["content"]["application/json"]["schema"]["oneOf"][1]["type"] == "array"


def test_unknown_paths_and_methods_get_the_error_body(http):
    missing = http.post("/strata.v1.Strata/Nothing", json={})
    assert (missing.status_code, missing.json()["error"]["status"]) == (404, "NOT_FOUND")
    assert http.get(f"/{SERVICE.full_name}/SearchVideos").status_code == 405


# -- the same credentials: a gateway with TLS and tokens, and the HTTP API in front of it over HTTPS ---------------
@pytest.fixture(scope="module")
def secured(stack, tmp_path_factory):
    """An HTTPS client of the HTTP API in front of a gateway that requires tokens (tests/serving/http_api/secured.py)."""
    with secured_api(stack[0], tmp_path_factory.mktemp("http-pki")) as api:
        verify = ssl.create_default_context(cafile=str(api.ca))
        with httpx.Client(base_url=api.url, verify=verify, timeout=60) as c:
            yield c


def test_the_callers_token_decides_as_it_does_over_grpc(secured):
    for token in ("", secrets.token_hex(16)):                     # none, and one the access file does not list
        refused = post(secured, "SearchVideos", {"text": "a dog runs"}, token)
        assert (refused.status_code, refused.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    found = answer(post(secured, "SearchVideos", {"text": "a dog runs", "topK": 3}, READ_TOKEN), pb.SearchResponse())
    assert len(found.hits) == 3
    denied = post(secured, "Delete", {"kind": "ITEM_KIND_CAPTION", "ids": ["cap0001"]}, READ_TOKEN)
    assert (denied.status_code, denied.json()["error"]["status"]) == (403, "PERMISSION_DENIED")
    written = answer(post(secured, "IndexCaptions", {"captions": [{"id": "httpsec", "text": "a cat sleeps"}]},
                          WRITE_TOKEN), pb.IndexResponse())
    deleted = answer(post(secured, "Delete", {"kind": "ITEM_KIND_CAPTION", "ids": ["httpsec"]}, WRITE_TOKEN),
                     pb.DeleteResponse())
    assert (written.indexed, deleted.deleted) == (1, 1)
