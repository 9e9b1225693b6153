"""Raw video files -> the sampled, preprocessed frames a frame backbone takes (PyAV; torch-free).

Sampling rule (recorded in the frame backbone's manifest as :data:`common.frame_backbone.SAMPLING`): every frame of
the first video stream is decoded, in presentation order (the order the decoder emits them); a video of ``n``
frames keeps frames ``round(linspace(0, n - 1, T))`` (NumPy's round, as HGR's reader samples its features) when
``n > T``, else all ``n`` frames, which the tower pads with a mask. Two passes over the file (count, then keep the
chosen frames) keep memory to ``T`` frames whatever the video's length.

Preprocessing (:class:`common.frame_backbone.ImageSpec`): RGB, shorter side resized to ``resize`` (FFmpeg's
bilinear scaler), centre crop ``size`` x ``size``, scaled to [0, 1] and normalised with ImageNet's mean and standard
deviation, CHW float32.

Every failure to read a file is a :class:`VideoFileError` naming it: not a video, no video stream, a codec FFmpeg
cannot decode, no decodable frame, an empty file. A file from a client is decoded within :class:`DecodeLimits` (the
settings ``max_decoded_frames`` and ``max_frame_pixels``): past either, decoding stops at once with
:class:`~serving.gateway.errors.LimitExceeded` naming the setting.

Files come from clients, so FFmpeg opens them with an allow-list of container formats (:data:`CONTAINERS`: no
playlist, concat or image-sequence demuxer, which open other URLs or files) and no network protocol: a local file
may be read through FFmpeg's ``file`` protocol only, uploaded bytes through none.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import DataError
from common.frame_backbone import ImageSpec
from common.settings import Settings
from serving.gateway.errors import check_limit
from training.data.sampling import frame_indices

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv", ".gif", ".ts", ".flv")
CONTAINERS = ("mov", "mp4", "matroska", "webm", "avi", "mpegts", "mpeg", "ogg", "gif", "flv")   # FFmpeg demuxers
NO_PROTOCOL = "none"   # a protocol_whitelist that names no protocol: nothing may be opened from inside the bytes


class VideoFileError(DataError):
    """A video file that cannot be decoded; the message names the file."""


@dataclass(frozen=True)
class DecodeLimits:
    """How far a client's file may be decoded: frames, and pixels of one frame (``None``: no limit)."""

    frames: int | None = None
    pixels: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "DecodeLimits":
        return cls(settings.max_decoded_frames, settings.max_frame_pixels)

    def check_pixels(self, width: int, height: int, name: str) -> None:
        if self.pixels is not None:
            check_limit(width * height, self.pixels, "max_frame_pixels", "data",
                        f"pixels in a {width}x{height} frame of {name}", "scale the video down before sending it")

    def check_frames(self, count: int, name: str) -> None:
        if self.frames is not None:
            check_limit(count, self.frames, "max_decoded_frames", "data", f"decoded frames of {name} (and counting)",
                        "cut the video shorter before sending it")


NO_LIMITS = DecodeLimits()


@dataclass(frozen=True)
class DecodedVideo:
    name: str
    images: np.ndarray        # [kept frames, 3, size, size] float32, preprocessed
    num_frames: int           # frames decoded
    indices: np.ndarray       # which of them were kept
    duration: float           # seconds (-1 when the container does not say)
    times: np.ndarray | None = None   # seconds of each kept frame (None when a frame's timestamp is unknown)


def _open(source: str | Path | bytes, name: str):
    import av

    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise VideoFileError(f"{name}: the file is empty (0 bytes)")
        handle, protocols = io.BytesIO(bytes(source)), NO_PROTOCOL
    else:
        path = Path(source)
        if not path.is_file():
            raise VideoFileError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise VideoFileError(f"{name}: the file is empty (0 bytes)")
        handle, protocols = str(path), "file"
    options = {"format_whitelist": ",".join(CONTAINERS), "protocol_whitelist": protocols}
    try:
        container = av.open(handle, mode="r", options=options)
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise VideoFileError(f"{name}: not a video FFmpeg can read in an allowed container ({', '.join(CONTAINERS)}): "
                             f"{err}") from None
    if not container.streams.video:
        container.close()
        raise VideoFileError(f"{name}: the file has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        container.close()
        raise VideoFileError(f"{name}: the video stream's codec is not supported by this FFmpeg build")
    return container, stream


def _frames(source, name: str, limits: DecodeLimits = NO_LIMITS):
    """Decoded frames of the first video stream, in the order the decoder emits them (presentation order); a frame
    over ``limits.pixels`` stops decoding (the stream's declared size is checked before the first one)."""
    import av

    container, stream = _open(source, name)
    try:
        limits.check_pixels(stream.codec_context.width or 0, stream.codec_context.height or 0, name)
        try:
            for frame in container.decode(stream):
                limits.check_pixels(frame.width, frame.height, name)
                yield frame
        except av.FFmpegError as err:
            raise VideoFileError(f"{name}: decoding failed ({err})") from None
    finally:
        container.close()


def _duration(source, name: str) -> float:
    container, stream = _open(source, name)
    try:
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / 1e6
        return -1.0
    finally:
        container.close()


def preprocess(frame, spec: ImageSpec) -> np.ndarray:
    """One decoded frame -> [3, size, size] float32 (see the module docstring)."""
    width, height = frame.width, frame.height
    scale = spec.resize / min(width, height)
    new_w, new_h = max(spec.size, round(width * scale)), max(spec.size, round(height * scale))
    rgb = frame.reformat(width=new_w, height=new_h, format="rgb24", interpolation="BILINEAR").to_ndarray()
    top, left = (new_h - spec.size) // 2, (new_w - spec.size) // 2
    crop = rgb[top:top + spec.size, left:left + spec.size].astype(np.float32) / 255.0
    crop = (crop - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(crop.transpose(2, 0, 1))


def decode_video(source: str | Path | bytes, max_frames: int, spec: ImageSpec = ImageSpec(),
                 name: str | None = None, limits: DecodeLimits = NO_LIMITS) -> DecodedVideo:
    """The sampled, preprocessed frames of a video file (a path or its bytes); ``name`` names it in errors."""
    import av

    name = name or str(source)
    count = 0
    for _ in _frames(source, name, limits):
        count += 1
        limits.check_frames(count, name)
    if count == 0:
        raise VideoFileError(f"{name}: no frame could be decoded")
    indices = frame_indices(count, max_frames)
    wanted, kept, times = set(indices.tolist()), [], []
    for position, frame in enumerate(_frames(source, name, limits)):
        if position in wanted:
            times.append(frame.time)   # presentation time in seconds, None when the stream does not say
            try:
                kept.append(preprocess(frame, spec))
            except (av.FFmpegError, ValueError) as err:
                raise VideoFileError(f"{name}: frame {position} cannot be converted to RGB ({err})") from None
    if len(kept) != len(indices):
        raise VideoFileError(f"{name}: decoded {count} frames, then {len(kept)} of the {len(indices)} sampled ones "
                             f"on the second pass (the file changed, or decoding is not repeatable)")
    known = None if any(t is None for t in times) else np.asarray(times, np.float64)
    return DecodedVideo(name, np.stack(kept), count, indices, _duration(source, name), known)


def video_files(paths: list[str | Path]) -> list[Path]:
    """Files named, and the files under folders named (recursively, with a video suffix), sorted; no duplicates."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.exists():
            found.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def video_id(path: Path, root: Path | None = None) -> str:
    """A file's video id: its path below ``root`` (or its name), without the suffix, with '/' separators."""
    relative = path.relative_to(root) if root is not None and path.is_relative_to(root) else Path(path.name)
    return relative.with_suffix("").as_posix()


def files_with_ids(paths: list[str | Path]) -> list[tuple[str, Path]]:
    """(video id, file) for every file named or found under a folder named; two files with one id are refused."""
    found = []
    for raw in paths:
        root = Path(raw).expanduser()
        found += [(video_id(p, root if root.is_dir() else None), p) for p in video_files([raw])]
    ids = [i for i, _ in found]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise DataError(f"two files give the same video id: {', '.join(repeated[:5])} (ids are file names without "
                        f"their suffix, relative to the folder named)")
    return found
