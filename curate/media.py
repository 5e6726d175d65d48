"""Decode frames for people and models: JPEG/PNG bytes, or a frame referenced inside a source video.

Frames are stored as their source encoded them; this is the one place that turns them into pixels
(keyframes for embedding, thumbnails for the UI).
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image

from schemas import Frame


def decode_image(data: bytes) -> Image.Image:
    """Decode JPEG/PNG bytes into an RGB image (16-bit depth PNGs are scaled to 8-bit grey)."""
    img = Image.open(io.BytesIO(data))
    if img.mode in ("I;16", "I;16B", "I"):
        img = img.point(lambda v: v / 256).convert("L")
    return img.convert("RGB")


def decode_frame(frame: Frame) -> Image.Image:
    """Pixels of one frame, whether stored as bytes or as a reference into a video."""
    if frame.format == "video":
        if frame.video_uri is None or frame.video_timestamp_s is None:
            raise ValueError(f"video frame of camera {frame.camera!r} lacks its uri or timestamp")
        return video_frame(frame.video_uri, frame.video_timestamp_s)
    return decode_image(frame.read_bytes())


def video_frame(uri: str, timestamp_s: float) -> Image.Image:
    """The frame shown at `timestamp_s` in the video at `uri` (decoded with PyAV: AV1, H.264, ...)."""
    return _video_frames(uri, (round(timestamp_s, 4),))[0]


def video_frames(uri: str, timestamps_s: list[float]) -> list[Image.Image]:
    """Several frames of one video in one pass (seeks once, decodes forward)."""
    return _video_frames(uri, tuple(round(t, 4) for t in timestamps_s))


@lru_cache(maxsize=64)
def _video_frames(uri: str, timestamps: tuple[float, ...]) -> list[Image.Image]:
    import av
    import fsspec

    wanted = sorted(set(timestamps))
    found: dict[float, Image.Image] = {}
    with fsspec.open(uri, "rb") as fh, av.open(fh) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base)
        container.seek(int(max(0.0, wanted[0]) / tb), stream=stream, backward=True)
        last = None
        pending = list(wanted)
        for frame in container.decode(stream):
            t = (frame.pts or 0) * tb
            while pending and t + 1e-3 >= pending[0]:
                found[pending.pop(0)] = frame.to_image().convert("RGB")
            last = frame
            if not pending:
                break
        for t in pending:  # past the end: the last frame is what a player shows
            if last is None:
                raise ValueError(f"{uri} has no decodable video frames")
            found[t] = last.to_image().convert("RGB")
    return [found[t] for t in timestamps]


def thumbnail(frame: Frame, size: int = 160) -> Image.Image:
    """A small RGB preview of a frame, keeping aspect ratio."""
    img = decode_frame(frame)
    img.thumbnail((size, size))
    return img
