import numpy as np
import pytest

from training.data.sampling import frame_indices, pad_stack, sample_frames


def test_long_videos_keep_rounded_linspace_frames():
    assert frame_indices(25).tolist() == [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19, 20, 21, 23, 24]
    assert frame_indices(40).tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 21, 23, 25, 27, 29, 31, 33, 35, 37, 39]
    assert frame_indices(21).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    assert frame_indices(10, max_frames=4).tolist() == [0, 3, 6, 9]
    assert frame_indices(25).dtype == np.int64


def test_short_videos_keep_every_frame():
    assert frame_indices(20).tolist() == list(range(20))
    assert frame_indices(3).tolist() == [0, 1, 2]


def test_indices_strictly_increase_for_hdf5_reads():
    for n in range(21, 400):
        assert np.all(np.diff(frame_indices(n)) > 0), n


def test_sample_frames_on_regions_uses_the_frame_axis():
    regions = np.arange(10)[:, None, None] * np.ones((10, 2, 3))
    out = sample_frames(regions, max_frames=4)
    assert out.shape == (4, 2, 3)
    assert out[:, 0, 0].tolist() == [0, 3, 6, 9]


def test_pad_stack_zero_pads_with_a_mask():
    padded, mask = pad_stack([np.ones((2, 3)), 2 * np.ones((1, 3))], 4, np.float32)
    assert padded.dtype == np.float32 and mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(padded[:, :, 0], [[1, 1, 0, 0], [2, 0, 0, 0]])


@pytest.mark.parametrize("call, message", [
    (lambda: frame_indices(0), "at least one frame"),
    (lambda: frame_indices(5, max_frames=0), "max_frames"),
    (lambda: pad_stack([], 3, np.float32), "at least one"),
    (lambda: pad_stack([np.ones((2, 3)), np.ones((2, 4))], 3, np.float32), "trailing shape"),
    (lambda: pad_stack([np.ones((5, 3))], 3, np.float32), "more than the padded length"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
