"""Small real video files written with PyAV for the ingest tests, and the bad files the table covers."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

# (file name, container format, codec, frames, frames per second, pixel format)
GOOD = (
    ("h264_24fps.mp4", "mp4", "libx264", 12, 24, "yuv420p"),
    ("mpeg4_30fps.avi", "avi", "mpeg4", 9, 30, "yuv420p"),
    ("vp9_25fps.webm", "webm", "libvpx-vp9", 6, 25, "yuv420p"),
    ("mjpeg_10fps.mkv", "matroska", "mjpeg", 7, 10, "yuvj420p"),
    ("single_frame.mkv", "matroska", "ffv1", 1, 5, "yuv420p"),
    ("longer_than_window.mp4", "mp4", "mpeg4", 45, 15, "yuv420p"),
)


def frames_of(name: str, count: int, width: int = 96, height: int = 64) -> np.ndarray:
    """Deterministic moving gradients, distinct per file: [count, height, width, 3] uint8."""
    seed = sum(map(ord, name))
    y, x = np.mgrid[0:height, 0:width]
    out = np.empty((count, height, width, 3), np.uint8)
    for t in range(count):
        out[t, ..., 0] = (x * 2 + t * 9 + seed) % 256
        out[t, ..., 1] = (y * 3 + t * 5 + 2 * seed) % 256
        out[t, ..., 2] = ((x + y) + t * 13 + 3 * seed) % 256
    return out


def write_video(path: Path, container: str, codec: str, count: int, fps: int, pix_fmt: str) -> Path:
    import av

    frames = frames_of(path.name, count)
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_good(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_video(folder / name, *spec) for name, *spec in GOOD]


def write_audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), mode="w", format="matroska") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_bad(folder: Path) -> dict[str, str]:
    """Bad files -> a phrase the error naming each must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zero_length.mp4").write_bytes(b"")
    good = write_video(folder / "tmp.mp4", "mp4", "mpeg4", 8, 10, "yuv420p").read_bytes()
    (folder / "tmp.mp4").unlink()
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(np.random.default_rng(0).integers(
        0, 256, 4000, dtype=np.uint8)))
    write_audio_only(folder / "no_video_stream.mka")
    avi = write_video(folder / "unsupported_codec.avi", "avi", "mjpeg", 4, 10, "yuvj420p")
    data = avi.read_bytes()
    avi.write_bytes(data.replace(b"MJPG", b"QQQQ"))   # a FourCC no FFmpeg decoder knows
    assert good
    return {"zero_length.mp4": "empty", "corrupt.mp4": "not a video", "no_video_stream.mka": "no video stream",
            "unsupported_codec.avi": "codec"}
