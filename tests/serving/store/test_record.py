"""The record format: every dtype and shape round-trips; a corrupt or truncated buffer is refused by name."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from common.errors import DataError
from serving.store.record import ALIGN, DTYPES, RECORD_FORMAT, decode_record, encode_record

SHAPES = [(), (0,), (3,), (2, 0, 4), (5, 7), (3, 4, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_shape_round_trips(dtype):
    rng = np.random.default_rng(0)
    arrays = {f"a{i}": (rng.standard_normal(shape) * 50).astype(dtype) for i, shape in enumerate(SHAPES)}
    decoded = decode_record(encode_record(arrays))
    assert list(decoded) == list(arrays)
    for name, array in arrays.items():
        assert isinstance(decoded[name], np.ndarray)
        assert decoded[name].dtype == array.dtype and decoded[name].shape == array.shape
        np.testing.assert_array_equal(decoded[name], array)


def test_variable_shapes_big_endian_and_non_contiguous_inputs():
    frames = np.arange(60, dtype=">f4").reshape(6, 10)[:, ::2]  # big-endian and strided
    arrays = {"video_actions": np.ones((13, 8), np.float16), "frame_feats": frames, "video_frame_mask": np.ones(13, bool)}
    decoded = decode_record(encode_record(arrays))
    np.testing.assert_array_equal(decoded["frame_feats"], frames)
    assert decoded["frame_feats"].dtype == np.float32 and decoded["video_actions"].shape == (13, 8)


def test_decoding_is_zero_copy_and_read_only():
    data = encode_record({"x": np.arange(8, dtype=np.float32)})
    x = decode_record(memoryview(data))["x"]
    assert not x.flags.writeable and not x.flags.owndata
    assert x.ctypes.data % ALIGN == np.frombuffer(data, np.uint8).ctypes.data % ALIGN  # aligned as the record is


def test_empty_record_round_trips():
    assert decode_record(encode_record({})) == {}


@pytest.mark.parametrize("arrays, problem", [
    ({"x": np.array(["a"], dtype=object)}, "dtype object"),
    ({"x": np.zeros(2, np.complex64)}, "dtype complex64"),
    ({"x": [1.0, 2.0]}, "expected a numpy array"),
    ({"": np.zeros(1)}, "non-empty string"),
])
def test_unencodable_record_is_refused(arrays, problem):
    with pytest.raises(DataError, match=problem):
        encode_record(arrays)


def _with_header(data: bytes, edit) -> bytes:
    (length,) = struct.unpack_from("<I", data, 4)
    header = json.loads(data[8:8 + length])
    edit(header)
    new = json.dumps(header, separators=(",", ":")).encode().ljust(length)  # same length, so the payload stays where it was
    return data[:8] + new[:length] + data[8 + length:]


GOOD = encode_record({"x": np.arange(6, dtype=np.float32).reshape(2, 3), "m": np.ones(3, np.int64)})


@pytest.mark.parametrize("data, problem", [
    (GOOD[:5], "truncated"),
    (b"PICK" + GOOD[4:], "not a tensor record"),
    (GOOD[:-4], "truncated"),
    (GOOD + b"\0" * 16, "trailing bytes"),
    (GOOD[:8] + b"x" + GOOD[9:], "header is corrupt"),
    (GOOD[:4] + struct.pack("<I", 1 << 30) + GOOD[8:], "truncated"),
    (_with_header(GOOD, lambda h: h["arrays"][0].update(dtype="object")), "unknown dtype"),
    (_with_header(GOOD, lambda h: h["arrays"][0].update(shape=[9, 3])), "outside"),
    (_with_header(GOOD, lambda h: h["arrays"][1].update(offset=-8)), "outside"),
    (_with_header(GOOD, lambda h: h["arrays"][0].update(shape=[-1])), "bad shape"),
    (_with_header(GOOD, lambda h: h["arrays"][0].pop("offset")), "needs keys"),
    (_with_header(GOOD, lambda h: h["arrays"][0].update(name=7)), "bad array name"),
])
def test_corrupt_buffer_is_refused(data, problem):
    with pytest.raises(DataError, match=problem):
        decode_record(data)


def test_a_record_carries_its_format():
    (length,) = struct.unpack_from("<I", GOOD, 4)
    assert json.loads(GOOD[8:8 + length])["format"] == RECORD_FORMAT


def test_a_record_written_before_the_format_field_reads_as_format_one():
    """Records stored before headers named their format have the same layout: they read unchanged."""
    older = _with_header(GOOD, lambda h: h.pop("format"))
    (length,) = struct.unpack_from("<I", older, 4)
    assert "format" not in json.loads(older[8:8 + length])
    decoded = decode_record(older)
    np.testing.assert_array_equal(decoded["x"], np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize("found, problem", [
    (RECORD_FORMAT + 1, "written by a newer Strata .* upgrade Strata"),
    (0, "is not one this Strata reads .* index these items again"),
])
def test_a_record_of_another_format_is_refused_with_the_fix(found, problem):
    with pytest.raises(DataError, match=problem):
        decode_record(_with_header(GOOD, lambda h: h.update(format=found)))


@pytest.mark.parametrize("older_format", [1, 2])
def test_older_records_still_read_after_later_formats_added_optional_arrays(older_format):
    """Formats 2 and 3 only say a record may hold frame times (a video's) or node words (a caption's): a record of an
    earlier format reads unchanged, without them."""
    older = _with_header(GOOD, lambda h: h.update(format=older_format))
    assert RECORD_FORMAT == 3 and set(decode_record(older)) == set(decode_record(GOOD))
