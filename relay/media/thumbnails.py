"""Thumbnails: which size answers a request, and making one with Pillow.

Rules kept here (spec, "Thumbnails"):

- A request is answered from the configured sizes (`media.thumbnail_sizes`): the smallest
  one of the same method at least as large as asked, else the largest of that method.
  Clients ask for any size; we make and cache at most one file per configured size.
- "scale" keeps the aspect ratio and fits the image in the box; "crop" fills the box
  exactly, cutting the centre of the image to the box's aspect.
- Never upscale: an image already within the box is served as it is (`None` here).
- Only images Pillow reads are thumbnailed (`THUMBNAILABLE`); images with more than
  `max_pixels` pixels are refused (`ImageTooLarge`), before they are decoded.
- JPEG sources give JPEG thumbnails, everything else PNG (as Synapse does).

Spec: https://spec.matrix.org/v1.16/client-server-api/#thumbnails
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

METHODS = ("crop", "scale")
THUMBNAILABLE = {"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp"}
DEFAULT_SIZES = ("32x32 crop", "96x96 crop", "320x240 scale", "640x480 scale", "800x600 scale")


class ImageTooLarge(Exception):
    """The image has more pixels than we agree to decode."""


class NotAnImage(Exception):
    """Pillow cannot read it."""


@dataclass(frozen=True, slots=True)
class ThumbnailSize:
    width: int
    height: int
    method: str

    def __str__(self) -> str:
        return f"{self.width}x{self.height} {self.method}"


def parse_size(text: str) -> ThumbnailSize:
    """`"320x240 scale"` -> ThumbnailSize; ValueError if it is not that shape."""
    dims, _, method = text.strip().partition(" ")
    width, _, height = dims.partition("x")
    method = method.strip()
    if not (width.isdigit() and height.isdigit()) or method not in METHODS:
        raise ValueError(f"expected 'WIDTHxHEIGHT crop|scale', got {text!r}")
    size = ThumbnailSize(int(width), int(height), method)
    if not (0 < size.width <= 4096 and 0 < size.height <= 4096):
        raise ValueError(f"thumbnail dimensions must be 1-4096, got {text!r}")
    return size


def choose_size(
    sizes: tuple[ThumbnailSize, ...], width: int, height: int, method: str
) -> ThumbnailSize:
    """The configured size answering a request for `width`x`height` by `method`."""
    same = [s for s in sizes if s.method == method] or list(sizes)
    big_enough = [s for s in same if s.width >= width and s.height >= height]
    if big_enough:
        return min(big_enough, key=lambda s: (s.width * s.height, s.width))
    return max(same, key=lambda s: (s.width * s.height, s.width))


def is_thumbnailable(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() in THUMBNAILABLE


def make_thumbnail(
    path: Path, size: ThumbnailSize, *, max_pixels: int
) -> tuple[bytes, str, int, int] | None:
    """A thumbnail of the image at `path`: (bytes, content type, width, height), or None
    when the image already fits (serve the original). Blocks: run in a thread.

    Raises:
        NotAnImage: Pillow cannot read the file.
        ImageTooLarge: more than `max_pixels` pixels.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                raise ImageTooLarge(f"{image.width}x{image.height} is too many pixels")
            if image.width <= size.width and image.height <= size.height:
                return None
            source_format = image.format
            image.load()
            result = _crop(image, size) if size.method == "crop" else _scale(image, size)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise ImageTooLarge(str(exc)) from None
        raise NotAnImage(str(exc)) from None
    out = io.BytesIO()
    if source_format == "JPEG":
        result.convert("RGB").save(out, "JPEG", quality=80)
        content_type = "image/jpeg"
    else:
        if result.mode not in ("RGB", "RGBA", "L", "LA"):
            result = result.convert("RGBA")
        result.save(out, "PNG")
        content_type = "image/png"
    return out.getvalue(), content_type, result.width, result.height


def _scale(image, size: ThumbnailSize):
    """Largest size with the image's aspect that fits in the box."""
    from PIL import Image

    if size.width * image.height < size.height * image.width:
        width, height = size.width, max(1, image.height * size.width // image.width)
    else:
        width, height = max(1, image.width * size.height // image.height), size.height
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _crop(image, size: ThumbnailSize):
    """The centre of the image at the box's aspect, scaled down to the box (never up)."""
    from PIL import Image

    crop_w = min(image.width, image.height * size.width // size.height) or 1
    crop_h = min(image.height, image.width * size.height // size.width) or 1
    left = (image.width - crop_w) // 2
    top = (image.height - crop_h) // 2
    cropped = image.crop((left, top, left + crop_w, top + crop_h))
    if crop_w > size.width or crop_h > size.height:
        cropped = cropped.resize((size.width, size.height), Image.Resampling.LANCZOS)
    return cropped
