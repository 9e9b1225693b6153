"""Raw video decoding: real files of several codecs, containers and frame rates; the sampling rule; the bad-file
table (each a clear error naming the file)."""
from __future__ import annotations

import numpy as np
import pytest

from common.frame_backbone import ImageSpec
from serving.ingest.decode import VideoFileError, decode_video, video_files, video_id
from tests.serving.ingest.videos import GOOD, write_bad, write_good
from training.data.sampling import frame_indices


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_good(root / "good")
    return root, write_bad(root / "bad")


@pytest.mark.parametrize("name,container,codec,frames,fps,pix_fmt", GOOD)
def test_every_frame_is_counted_and_the_window_sampled(folders, name, container, codec, frames, fps, pix_fmt):
    root, _ = folders
    spec = ImageSpec(size=32, resize=40)
    video = decode_video(root / "good" / name, max_frames=20, spec=spec)
    assert video.num_frames == frames
    assert video.indices.tolist() == frame_indices(frames, 20).tolist()
    assert video.images.shape == (min(frames, 20), 3, 32, 32) and video.images.dtype == np.float32
    assert video.duration == pytest.approx(frames / fps, abs=1.5 / fps)
    # each kept frame's presentation time: frame k of a constant-rate file is shown at k / fps seconds
    assert video.times == pytest.approx(video.indices / fps, abs=0.5 / fps)
    again = decode_video((root / "good" / name).read_bytes(), max_frames=20, spec=spec, name=name)
    assert np.array_equal(again.images, video.images)   # bytes and path decode alike


def test_a_longer_video_keeps_round_linspace_frames(folders):
    root, _ = folders
    video = decode_video(root / "good" / "longer_than_window.mp4", max_frames=20, spec=ImageSpec(size=32, resize=40))
    assert video.indices.tolist() == np.round(np.linspace(0, 44, 20)).astype(int).tolist()
    assert video.indices[0] == 0 and video.indices[-1] == 44


@pytest.mark.parametrize("name", ["zero_length.mp4", "corrupt.mp4", "no_video_stream.mka", "unsupported_codec.avi"])
def test_a_bad_file_is_a_clear_error_naming_it(folders, name):
    root, phrases = folders
    with pytest.raises(VideoFileError) as err:
        decode_video(root / "bad" / name, max_frames=20)
    assert name in str(err.value) and phrases[name] in str(err.value)


def test_folders_expand_to_their_video_files_with_ids_relative_to_the_folder(folders):
    root, _ = folders
    files = video_files([root / "good"])
    assert [p.name for p in files] == sorted(n for n, *_ in GOOD)
    assert video_id(files[0], root) == f"good/{files[0].stem}" and video_id(files[0]) == files[0].stem


PLAYLISTS = {   # files that name a URL inside them: FFmpeg's hls and concat demuxers would fetch it
    "playlist.m3u8": "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:{port}/clip.ts\n#EXT-X-ENDLIST\n",
    "list.ffconcat": "ffconcat version 1.0\nfile 'http://127.0.0.1:{port}/clip.mp4'\n",
}


@pytest.mark.parametrize("name", sorted(PLAYLISTS))
@pytest.mark.parametrize("as_bytes", [False, True], ids=["file", "uploaded bytes"])
def test_a_file_naming_a_network_url_is_refused_and_nothing_is_fetched(tmp_path, name, as_bytes):
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        path = tmp_path / name
        path.write_text(PLAYLISTS[name].format(port=listener.getsockname()[1]))
        with pytest.raises(VideoFileError) as err:
            decode_video(path.read_bytes() if as_bytes else path, max_frames=20, name=name)
        assert name in str(err.value) and "allowed container" in str(err.value)
        with pytest.raises(socket.timeout):   # FFmpeg never connected
            listener.accept()
