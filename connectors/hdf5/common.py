"""Helpers shared by the HDF5 connectors: opening files with clear errors, units, and image encoding."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from connectors.base import SourceOptions

UNIT_SEP = "::"
HDF5_SUFFIXES = (".hdf5", ".h5", ".he5")
RAW_IMAGE_ENCODINGS = ("png", "jpeg")


class HDF5FormatError(ValueError):
    """An HDF5 file that cannot be opened or lacks what its layout requires; the message names the file."""


def natural_key(text: str) -> list[Any]:
    """Sort key that orders demo_2 before demo_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def hdf5_files(uri: str) -> list[Path]:
    """The HDF5 files of a source: the file itself, or every HDF5 file under a directory (natural order)."""
    path = Path(uri)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted((p for p in path.rglob("*") if p.suffix in HDF5_SUFFIXES and p.is_file()),
                      key=lambda p: natural_key(str(p.relative_to(path))))
    return []


def first_hdf5_file(uri: str, *, max_depth: int = 3) -> Path | None:
    """The first HDF5 file of a source or work unit (`root::relative`), looking at most `max_depth`
    directories down (cheap, for probes)."""
    root, relative = split_unit(uri)
    path = Path(root) / relative if relative else Path(root)
    if path.is_file():
        return path if path.suffix in HDF5_SUFFIXES else None
    if not path.is_dir():
        return None
    level = [path]
    for _ in range(max_depth + 1):
        nxt: list[Path] = []
        for directory in level:
            try:
                entries = sorted(directory.iterdir(), key=lambda p: natural_key(p.name))
            except OSError:
                continue
            for entry in entries:
                if entry.suffix in HDF5_SUFFIXES and entry.is_file():
                    return entry
            nxt.extend(e for e in entries if e.is_dir())
        level = nxt[:200]
    return None


@contextmanager
def open_hdf5(path: str | Path) -> Iterator[Any]:
    """Open read-only; a truncated or non-HDF5 file raises `HDF5FormatError` naming it."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise HDF5FormatError(f"{path} cannot be opened as HDF5 (truncated, still being written, or not HDF5): "
                              f"{exc}") from None
    try:
        yield handle
    finally:
        handle.close()


def read_array(dataset: Any, where: str) -> np.ndarray:
    """Read a whole dataset; a damaged chunk raises `HDF5FormatError` instead of an h5py internal error."""
    try:
        return np.asarray(dataset[()])
    except (OSError, RuntimeError, KeyError) as exc:
        raise HDF5FormatError(f"{where} cannot be read (damaged file?): {exc}") from None


def encode_pixels(pixels: np.ndarray, *, encoding: str) -> tuple[str, bytes]:
    """Encode one HxWx3 (or HxW) uint8 array for the lake; PNG is lossless, JPEG (q95) is smaller and faster."""
    img = Image.fromarray(np.ascontiguousarray(pixels))
    buf = io.BytesIO()
    if encoding == "jpeg":
        img.convert("RGB").save(buf, format="JPEG", quality=95)
        return "jpeg", buf.getvalue()
    img.save(buf, format="PNG", compress_level=1)
    return "png", buf.getvalue()


def policy(options: SourceOptions, name: str, allowed: tuple[str, ...]) -> str:
    """A named-string option from `options.extra`, defaulting to the first allowed value."""
    value = str(options.extra.get(name, allowed[0]))
    if value not in allowed:
        raise ValueError(f"option {name}={value!r} is not one of {', '.join(allowed)}")
    return value


def split_unit(unit: str) -> tuple[str, str]:
    """`root::relative` -> (root, relative); a bare path is its own root with no relative part."""
    root, _, relative = unit.partition(UNIT_SEP)
    return root, relative
