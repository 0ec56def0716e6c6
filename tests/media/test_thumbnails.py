"""Thumbnails within a memory budget: what is decoded, what is copied, how many at once.

Checked by the sizes of the images Pillow is asked to make, never by RSS or time.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import trio
from PIL import Image

from relay.config import config_from_dict, parse_size
from relay.media import repository as repository_module
from relay.media.repository import THUMBNAILERS, MediaFile, MediaRepository
from relay.media.thumbnails import ImageTooLarge, decode, make_thumbnail


def _write(path: Path, image: Image.Image, fmt: str) -> Path:
    image.save(path, fmt)
    return path


def _jpeg(tmp_path: Path, width: int, height: int) -> Path:
    return _write(tmp_path / "big.jpg", Image.new("RGB", (width, height), (10, 120, 200)), "JPEG")


@pytest.mark.parametrize(
    ("size", "decoded"),
    [("320x240 scale", (500, 375)), ("96x96 crop", (500, 375)), ("800x600 scale", (1000, 750))],
)
def test_a_big_jpeg_is_decoded_at_a_reduced_scale(
    tmp_path: Path, size: str, decoded: tuple[int, int]
) -> None:
    path = _jpeg(tmp_path, 4000, 3000)
    with Image.open(path) as image:
        assert decode(image, parse_size(size)).size == decoded


def test_a_jpeg_thumbnail_is_still_the_asked_size(tmp_path: Path) -> None:
    path = _jpeg(tmp_path, 4000, 3000)
    made = make_thumbnail(path, parse_size("320x240 scale"), max_pixels=32_000_000)
    assert made is not None and made[1:] == ("image/jpeg", 320, 240)
    made = make_thumbnail(path, parse_size("96x96 crop"), max_pixels=32_000_000)
    assert made is not None and made[1:] == ("image/jpeg", 96, 96)


class Recorder:
    """Records the size of every image Pillow crops, copies or converts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[tuple[str, tuple[int, int]]] = []
        for name in ("crop", "copy", "convert"):
            original = getattr(Image.Image, name)

            def wrapped(image: Image.Image, *a: Any, _o: Any = original, _n: str = name, **k: Any):
                self.sizes.append((_n, image.size))
                return _o(image, *a, **k)

            monkeypatch.setattr(Image.Image, name, wrapped)


@pytest.mark.parametrize("mode", ["RGB", "P"])
def test_a_big_png_is_never_copied_or_converted_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    image = Image.new("RGB", (3000, 2000), (200, 30, 30))
    if mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    path = _write(tmp_path / "big.png", image, "PNG")
    colour = image.convert("RGB").getpixel((0, 0))
    recorder = Recorder(monkeypatch)
    for size in ("96x96 crop", "320x240 scale"):
        made = make_thumbnail(path, parse_size(size), max_pixels=32_000_000)
        assert made is not None
        with Image.open(io.BytesIO(made[0])) as thumb:
            assert thumb.size == made[2:] and thumb.getpixel((5, 5))[:3] == colour
    assert made[2:] == (320, 213)
    # Nothing near the source size (6 Mpx) is copied: at most a few times the thumbnail.
    assert all(w * h <= 3 * 320 * 3 * 240 for _, (w, h) in recorder.sizes), recorder.sizes


def test_the_pixel_limit_is_checked_from_the_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "wide.png", Image.new("L", (5600, 5600)), "PNG")
    with pytest.raises(ImageTooLarge):
        make_thumbnail(path, parse_size("96x96 crop"), max_pixels=5600 * 5600 - 1)


async def test_one_thumbnail_is_made_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = MediaRepository(None, config_from_dict({"server_name": "me.example"}, tmp_path))  # type: ignore[arg-type]
    limiters: list[trio.CapacityLimiter] = []

    async def run_sync(fn: Any, *args: Any, limiter: trio.CapacityLimiter) -> Any:
        limiters.append(limiter)
        return None  # "already fits": the original is served

    monkeypatch.setattr(repository_module.trio.to_thread, "run_sync", run_sync)
    original = MediaFile(tmp_path / "x.png", "image/png", None, 1)
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(
                repo._make_thumbnail, "me.example", "m", original, parse_size("96x96 crop"), False
            )
    assert THUMBNAILERS == 1
    assert limiters == [repo._thumbnailers] * 3
    assert repo._thumbnailers.total_tokens == 1
