"""Decode frames for people and models: JPEG/PNG bytes, or a frame referenced inside a source video.

Frames are stored as their source encoded them; this is the one place that turns them into pixels
(keyframes for embedding, thumbnails for the UI).
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image

from schemas import Episode, Frame


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
    """Several frames of one video in one open: decodes forward between close timestamps and seeks again
    (to the keyframe before) across gaps longer than `SEEK_GAP_S`, so keyframes spread over a long video cost
    about one GOP each, not a decode of everything in between."""
    return _video_frames(uri, tuple(round(t, 4) for t in timestamps_s))


SEEK_GAP_S = 1.0
"""Past this gap to the next wanted timestamp, seeking beats decoding forward."""
_EARLY_S = 1e-3
"""A frame this much before the wanted time still counts (float32 timestamps in LeRobot parquet)."""


@lru_cache(maxsize=64)
def _video_frames(uri: str, timestamps: tuple[float, ...]) -> list[Image.Image]:
    import av
    import fsspec

    wanted = sorted(set(timestamps))
    found: dict[float, Image.Image] = {}
    with fsspec.open(uri, "rb") as fh, av.open(fh) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base)
        decoder = None
        current = None  # (time, frame) of the last decoded frame
        for target in wanted:
            if current is not None and current[0] + _EARLY_S >= target:
                found[target] = current[1].to_image().convert("RGB")
                continue
            if decoder is None or current is None or target - current[0] > SEEK_GAP_S:
                container.seek(int(max(0.0, target) / tb), stream=stream, backward=True)
                decoder = container.decode(stream)
            for frame in decoder:
                current = ((frame.pts or 0) * tb, frame)
                if current[0] + _EARLY_S >= target:
                    break
            if current is None:
                raise ValueError(f"{uri} has no decodable video frames")
            # past the end, the last frame is what a player shows
            found[target] = current[1].to_image().convert("RGB")
    return [found[t] for t in timestamps]


def thumbnail(frame: Frame, size: int = 160) -> Image.Image:
    """A small RGB preview of a frame, keeping aspect ratio."""
    img = decode_frame(frame)
    img.thumbnail((size, size))
    return img


# -- keyframes --------------------------------------------------------------------------------------------


def keyframe_indices(n_steps: int, *, count: int = 3) -> list[int]:
    """`count` step indices spread evenly over an episode, first and last included (fewer if it is short)."""
    if n_steps <= 0 or count <= 0:
        return []
    if count == 1:
        return [n_steps // 2]
    return sorted({round(i * (n_steps - 1) / (count - 1)) for i in range(count)})


def keyframes(episode: Episode, *, camera: str | None = None, count: int = 3,
              size: int | None = None) -> list[tuple[int, Image.Image]]:
    """Decoded keyframes of one camera of an episode: [(step index, RGB image)], in step order.

    Video frames of one file are decoded in a single forward pass (one seek), so a keyframe costs about
    one GOP of decoding, not a decode from the start. `camera` defaults to the first camera that is not
    missing; `size` makes thumbnails.

    Raises:
        ValueError: the episode has no usable camera, or `camera` is not one of its cameras.
    """
    usable = [c.name for c in episode.cameras if not c.missing]
    name = camera or (usable[0] if usable else None)
    if name is None or name not in usable:
        raise ValueError(f"episode {episode.episode_id} has no usable camera {camera!r} (usable: {usable})")
    chosen: list[tuple[int, Frame]] = []
    for index in keyframe_indices(len(episode.steps), count=count):
        frame = next((f for f in episode.steps[index].frames if f.camera == name), None)
        if frame is not None:
            chosen.append((index, frame))
    by_video: dict[str, list[tuple[int, float]]] = {}
    images: dict[int, Image.Image] = {}
    for index, frame in chosen:
        if frame.format == "video" and frame.video_uri is not None and frame.video_timestamp_s is not None:
            by_video.setdefault(frame.video_uri, []).append((index, frame.video_timestamp_s))
        else:
            images[index] = decode_frame(frame)
    for uri, wanted in by_video.items():
        for (index, _), img in zip(wanted, video_frames(uri, [t for _, t in wanted]), strict=True):
            images[index] = img
    result = []
    for index in sorted(images):
        img = images[index]
        if size is not None:
            img = img.copy()
            img.thumbnail((size, size))
        result.append((index, img))
    return result


def video_info(uri: str) -> dict[str, float | int | str]:
    """Codec, size, frame rate, frame count and duration of the first video stream (headers only)."""
    import av
    import fsspec

    with fsspec.open(uri, "rb") as fh, av.open(fh) as container:
        if not container.streams.video:
            raise ValueError(f"{uri} has no video stream")
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else (
            container.duration / 1e6 if container.duration else 0.0)
        return {"codec": stream.codec_context.name, "width": stream.codec_context.width,
                "height": stream.codec_context.height, "fps": float(stream.average_rate or 0),
                "frames": int(stream.frames), "duration_s": duration}


def encode_video(images: list[Image.Image], path: str, *, fps: float, codec: str = "h264",
                 pix_fmt: str = "yuv420p") -> int:
    """Write RGB images as an mp4 (frame i at pts i/fps) with PyAV; returns the number of frames written.

    Used by the demo writers and tests to produce real LeRobot-style video (H.264 or AV1 via SVT-AV1).
    """
    import fractions

    import av

    if not images:
        raise ValueError("encode_video needs at least one image")
    width, height = images[0].size
    rate = fractions.Fraction(fps).limit_denominator(1000)
    with av.open(path, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = fractions.Fraction(1, 1) / rate
        if codec in ("h264", "libx264"):
            stream.options = {"g": "10", "crf": "23", "preset": "veryfast"}
        elif codec in ("av1", "libsvtav1"):
            stream.options = {"g": "10", "preset": "12"}
        for i, img in enumerate(images):
            frame = av.VideoFrame.from_image(img.convert("RGB"))
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return len(images)
