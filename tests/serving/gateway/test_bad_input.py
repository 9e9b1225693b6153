"""Bad input on the running stack: every case answered with the status that tells the caller what to do, the size cap
it went over named (in the message and in google.rpc's ErrorInfo and BadRequest), nothing half-written, and the
gateway serving on. Malformed bytes go over a raw channel (no client library could send them).

The caps of files, decoding and messages are tested on a second gateway in this process with small caps (the same
Milvus and Triton as the session's stack), so no test has to send hundreds of megabytes.
"""
from __future__ import annotations

import grpc
import numpy as np
import pytest

from clients.client import StrataCallError, StrataClient, Video
from serving.proto.strata.v1 import strata_pb2 as pb
from tests.serving.gateway.corpus import VIDEOS, corpus_videos
from tests.serving.gateway.stack import side_gateway

pytestmark = pytest.mark.slow

CANARY = "a man is slicing bread in a kitchen"
TIGHT = dict(max_file_bytes=4096, max_message_bytes=64 << 10, max_decoded_frames=3, max_frame_pixels=64 * 48)


def raw(url: str, method: str, *payloads: bytes, stream: bool = False):
    """Send ``payloads`` as they are to ``strata.v1.Strata/method``; an error as the client library raises it."""
    from grpc_status import rpc_status

    with grpc.insecure_channel(url) as channel:
        kind = channel.stream_unary if stream else channel.unary_unary
        call = kind(f"/strata.v1.Strata/{method}")   # no serializers: the bytes go as given
        try:
            return call(iter(payloads) if stream else payloads[0], timeout=60)
        except grpc.RpcError as err:
            raise StrataCallError(method, err.code(), err.details() or "", url, rpc_status.from_call(err)) from None


def bad_tensor_request(shape) -> bytes:
    return pb.SearchCaptionsRequest(features=pb.VideoFeatures(frames=pb.Tensor(shape=shape, data=b"\0" * 16))
                                    ).SerializeToString()


def hits(client: StrataClient) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in client.search_videos(CANARY, top_k=5).hits]


@pytest.fixture(scope="module")
def url(stack):
    from common.connect import gateway_url

    return gateway_url(stack[0])


@pytest.fixture(scope="module")
def tight(stack):
    """A second gateway in this process, on the stack's Milvus and Triton, with small caps (:data:`TIGHT`)."""
    with side_gateway(stack[0], **TIGHT) as running:
        yield running


FIRST_ID, FIRST_FRAMES = corpus_videos()[0]
FIRST_VIDEO = Video(FIRST_ID, FIRST_FRAMES, source="synthetic", duration=len(FIRST_FRAMES) / 2)   # as the stack indexed it
# (case, call(client, url), status, the size cap or error reason named, words of the message)
ROWS = [
    ("invalid UTF-8 in a string field", lambda c, u: raw(u, "SearchVideos", b"\x0a\x02\xff\xfe"),
     "INVALID_ARGUMENT", "MALFORMED_REQUEST", "not a valid strata.v1.SearchVideosRequest"),
    ("a truncated message", lambda c, u: raw(u, "IndexCaptions", b"\x0a\x20\x0a\x03abc"),
     "INVALID_ARGUMENT", "MALFORMED_REQUEST", "not a valid strata.v1.IndexCaptionsRequest"),
    ("a malformed message in a stream", lambda c, u: raw(u, "IndexVideos", b"\x0a\x05\x0a", stream=True),
     "INVALID_ARGUMENT", "MALFORMED_REQUEST", "not a valid strata.v1.IndexVideosRequest"),
    ("a 100 KB query", lambda c, u: c.search_videos("a dog ran " * 10_000),
     "INVALID_ARGUMENT", "max_text_bytes", "100,000 UTF-8 bytes of text"),
    ("a query over spaCy's 1,000,000 characters", lambda c, u: c.search_videos("x" * 1_000_001),
     "INVALID_ARGUMENT", "max_text_bytes", "over the limit of 2,048"),
    ("a query of many characters to score", lambda c, u: c.score_videos("é" * 1500, ["vid0001"]),
     "INVALID_ARGUMENT", "max_text_bytes", "3,000 UTF-8 bytes"),
    ("a caption over Milvus's 4,096 bytes", lambda c, u: c.index_captions([("long-caption", "a cat sits " * 500)]),
     "INVALID_ARGUMENT", "max_text_bytes", "captions[0].text"),
    ("a tensor shape whose product overflows",
     lambda c, u: raw(u, "SearchCaptions", bad_tensor_request([1 << 40, 1 << 40])),
     "INVALID_ARGUMENT", "", "needs 4,835,703,278,458,516,698,824,704 bytes"),
    ("more frames than max_video_frames", lambda c, u: c.search_captions(frames=np.zeros((2049, 256), np.float32)),
     "INVALID_ARGUMENT", "max_video_frames", "2,049 frames"),
    ("more ids than max_ids_per_call", lambda c, u: c.delete("captions", [f"c{i}" for i in range(10_001)]),
     "INVALID_ARGUMENT", "max_ids_per_call", "10,001 caption ids in one call"),
    ("5,000 ids, each twice", lambda c, u: c.index_captions([(f"dup{i % 5000}", "a dog") for i in range(10_000)],
                                                              batch=10_000),
     "INVALID_ARGUMENT", "", "caption ids repeat within one call: 'dup0', 'dup1'"),
    ("an id in two messages of one IndexVideos stream",
     lambda c, u: c.index_videos([FIRST_VIDEO, FIRST_VIDEO], batch=1),
     "INVALID_ARGUMENT", "", "'vid0000' came in an earlier message of this stream"),
    ("an id over 512 bytes", lambda c, u: c.index_captions([("x" * 513, "a dog")]),
     "INVALID_ARGUMENT", "", "1..512 UTF-8 bytes"),
]


@pytest.mark.parametrize(("call", "code", "named", "words"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_each_bad_input_gets_its_status_naming_the_limit(client, url, call, code, named, words):
    before = client.describe()
    with pytest.raises(StrataCallError) as caught:
        call(client, url)
    err = caught.value
    assert (err.code.name, words in err.details) == (code, True), err.details
    if named.startswith("max_"):
        assert (err.reason, err.limit) == ("LIMIT_EXCEEDED", named)
        assert f"(setting {named})" in err.details
        assert err.violations and err.violations[0][1] == err.details
    elif named:
        assert err.reason == named
    after = client.describe()
    assert (after.videos, after.captions) == (before.videos, before.captions) == (VIDEOS, VIDEOS)
    assert client.health() == "SERVING"


def test_a_caption_over_the_limit_leaves_nothing_searchable(client):
    with pytest.raises(StrataCallError):
        client.index_captions([("long-caption", "a cat sits " * 500)])
    with pytest.raises(StrataCallError) as err:
        client.delete("captions", ["long-caption", "long-caption"])   # repeated: refused before any delete
    assert err.value.violations == [("ids", err.value.details)]
    assert client.delete("captions", ["long-caption"]).deleted == 0


def test_a_clip_over_max_file_bytes_is_resource_exhausted(tight, tmp_path):
    gateway, address = tight
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 5000)
    with StrataClient(address) as client:
        with pytest.raises(StrataCallError) as err:
            client.search_captions_by_clip(str(big), chunk_bytes=1000)
    assert (err.value.code.name, err.value.limit) == ("RESOURCE_EXHAUSTED", "max_file_bytes")
    assert "5,000 bytes in file big.mp4" in err.value.details


def test_a_file_over_max_file_bytes_is_dropped_as_it_arrives_and_named_in_its_place():
    from serving.gateway.servicer import OversizedFile, files_from_chunks

    chunks = [pb.VideoFileChunk(id="big", filename="big.mp4", data=b"x" * 600), pb.VideoFileChunk(data=b"x" * 600),
              pb.VideoFileChunk(id="small", data=b"y" * 10)]
    big, small = files_from_chunks(chunks, max_bytes=1000)
    assert isinstance(big, OversizedFile) and (big.id, big.error.code, big.error.metadata["limit"]) == (
        "big", "RESOURCE_EXHAUSTED", "max_file_bytes")
    assert (small.id, small.data) == ("small", b"y" * 10)


def test_a_message_over_max_message_bytes_is_resource_exhausted_naming_the_size(tight):
    gateway, address = tight
    frames = np.zeros((100, 256), np.float32)   # 102,400 bytes of features
    with pytest.raises(StrataCallError) as err:
        raw(address, "SearchCaptions", pb.SearchCaptionsRequest(
            features=pb.VideoFeatures(frames=pb.Tensor(shape=[100, 256], data=frames.tobytes()))).SerializeToString())
    assert err.value.code.name == "RESOURCE_EXHAUSTED" and str(64 << 10) in err.value.details


def test_decoding_stops_at_the_frame_and_pixel_caps(tmp_path):
    from serving.gateway.errors import LimitExceeded
    from serving.ingest.decode import DecodeLimits, decode_video
    from tests.serving.ingest.videos import write_video

    path = write_video(tmp_path / "clip.mp4", "mp4", "mpeg4", 9, 30, "yuv420p")   # 96 x 64
    data = path.read_bytes()
    assert decode_video(data, 20, limits=DecodeLimits(frames=9, pixels=96 * 64)).num_frames == 9
    for limits, named, words in [(DecodeLimits(frames=3), "max_decoded_frames", "4 decoded frames of clip"),
                                 (DecodeLimits(pixels=64 * 48), "max_frame_pixels", "6,144 pixels in a 96x64 frame")]:
        with pytest.raises(LimitExceeded) as err:
            decode_video(data, 20, name="clip", limits=limits)
        assert (err.value.metadata["limit"], words in str(err.value)) == (named, True)


def test_backend_errors_map_to_the_status_that_says_what_to_do(tight):
    """Real errors of the stack's Triton and Milvus through the one mapping the servicer answers with."""
    from common.repository import TEXT_BACKBONE
    from serving.gateway.errors import failure
    from serving.triton.client import TritonModel, TritonRequestError
    from training.text.tokenize import BACKBONE_LAYOUT

    gateway, _ = tight
    version = gateway.service.active()
    model = version.model
    inputs = model.tokenizer([["a", "dog"]]).backbone_inputs()
    missing = TritonModel(model.towers.client, TEXT_BACKBONE, BACKBONE_LAYOUT, model.backbone_version + 41)
    with pytest.raises(TritonRequestError) as err:
        missing.infer(inputs)   # a version Triton does not have
    answer = failure(err.value)
    assert (answer.code, answer.reason, answer.metadata) == ("FAILED_PRECONDITION", "MODEL_NOT_LOADED",
                                                            {"backend": "triton"})
    expired = TritonModel(model.towers.client, TEXT_BACKBONE, BACKBONE_LAYOUT, model.backbone_version, timeout_s=1e-6)
    with pytest.raises(TritonRequestError) as err:
        expired.infer(inputs)
    assert (failure(err.value).code, failure(err.value).retry_after_s) == ("DEADLINE_EXCEEDED", None)
    # a collection dropped under a gateway that knew it: Milvus answers "collection not found"
    from serving.index.milvus_index import IndexRefused, MilvusIndex

    index, other = version.index, MilvusIndex.from_settings(gateway.settings)
    index.ensure_collection("dropped_under_us", 4, "videos")
    assert index.search("dropped_under_us", np.ones((1, 4), np.float32), 3) == [[]]
    other.drop("dropped_under_us")
    other.close()
    with pytest.raises(IndexRefused) as err:
        index.search("dropped_under_us", np.ones((1, 4), np.float32), 3)
    assert (failure(err.value).code, failure(err.value).reason) == ("FAILED_PRECONDITION", "MODEL_NOT_LOADED")


UNARY = {"SearchVideos": pb.SearchVideosRequest, "SearchCaptions": pb.SearchCaptionsRequest,
         "ScoreVideos": pb.ScoreVideosRequest, "Delete": pb.DeleteRequest}   # no junk may index a caption
STREAMS = ("IndexVideos", "IndexVideoFiles", "SearchCaptionsByClip")


def _requests():
    """Random malformed requests: (method, payloads, stream)."""
    from hypothesis import strategies as st

    junk = st.binary(min_size=1, max_size=64)
    utf8_broken = st.tuples(st.text(max_size=8), st.binary(min_size=1, max_size=4).filter(_not_utf8)).map(
        lambda t: t[0].encode() + t[1])
    dims = st.lists(st.integers(-(1 << 62), 1 << 62) | st.integers(0, 300), min_size=0, max_size=4)

    def text_field(method, data):   # field 1 of the request is a string in every unary request but Delete
        return b"\x0a" + bytes([len(data)]) + data

    unary_junk = st.tuples(st.sampled_from(sorted(UNARY)), junk).map(lambda t: (t[0], [t[1]], False))
    unary_utf8 = st.tuples(st.sampled_from(["SearchVideos", "ScoreVideos", "SearchCaptions"]), utf8_broken).map(
        lambda t: (t[0], [text_field(*t)], False))
    stream_junk = st.tuples(st.sampled_from(STREAMS), st.lists(junk, min_size=1, max_size=3)).map(
        lambda t: (t[0], t[1], True))
    tensors = st.tuples(dims, st.binary(max_size=64), st.integers(-5, 2000), st.integers(-5, 20000)).map(
        lambda t: ("SearchCaptions", [pb.SearchCaptionsRequest(
            features=pb.VideoFeatures(frames=pb.Tensor(shape=t[0], data=t[1])), top_k=t[2],
            candidate_depth=t[3]).SerializeToString()], False))
    return st.one_of(unary_junk, unary_utf8, stream_junk, tensors)


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


def test_random_malformed_requests_never_get_unknown_or_internal_and_the_canary_holds(client, url):
    from hypothesis import HealthCheck, given, settings

    before = hits(client)
    answered: dict[str, int] = {}

    @settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(_requests())
    def send(request):
        method, payloads, stream = request
        try:
            raw(url, method, *payloads, stream=stream)
            code = "OK"
        except StrataCallError as err:
            code = err.code.name
        answered[code] = answered.get(code, 0) + 1
        assert code not in ("UNKNOWN", "INTERNAL"), (method, payloads)

    send()
    assert answered.get("INVALID_ARGUMENT", 0) > 0
    assert hits(client) == before
    assert (client.describe().videos, client.health()) == (VIDEOS, "SERVING")
