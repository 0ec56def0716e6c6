"""Thumbnails: which size answers a request, and making one with Pillow.

Rules kept here (spec, "Thumbnails"):

- A request is answered from the configured sizes (`media.thumbnail_sizes`): the smallest
  one of the same method at least as large as asked, else the largest of that method.
  Clients ask for any size; we make and cache at most one file per configured size.
- The sizes themselves (`ThumbnailSize`, `parse_size`) are configuration values and live in
  `relay/config.py`, which sits below this package.
- "scale" keeps the aspect ratio and fits the image in the box; "crop" fills the box
  exactly, cutting the centre of the image to the box's aspect.
- Never upscale: an image already within the box is served as it is (`None` here).
- Only images Pillow reads are thumbnailed (`THUMBNAILABLE`); images with more than
  `max_pixels` pixels (`media.max_image_pixels`, 32 million by default, as Synapse) are
  refused (`ImageTooLarge`) from their header, before they are decoded.
- Memory: decoding is the cost (Pillow holds up to 4 bytes a pixel, whatever the file's
  size: a 122 KB PNG of 5,600 x 5,600 decodes to 125 MB). So a JPEG is decoded at the
  smallest 1/2, 1/4 or 1/8 scale still at least as large as the thumbnail (`draft`);
  other formats are decoded whole (at most `max_pixels` x 4 bytes: 128 MB at the
  default) and then only the region kept is resized, integer-reduced first (no full-size
  crop copy). The repository makes one thumbnail at a time (`THUMBNAILERS`), so the
  peak is one decoded image, not one per concurrent request.
- JPEG sources give JPEG thumbnails, everything else PNG (as Synapse does).

Spec: https://spec.matrix.org/v1.16/client-server-api/#thumbnails
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from relay.config import ThumbnailSize

if TYPE_CHECKING:
    # Pillow is imported where it is used (it costs ~20 MB); only its types here.
    from PIL import Image

THUMBNAILABLE = {"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp"}


class ImageTooLarge(Exception):
    """The image has more pixels than we agree to decode."""


class NotAnImage(Exception):
    """Pillow cannot read it."""


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
            box = _source_box(image.width, image.height, size)
            result = _resize(decode(image, size), box, size)
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


#: `resize` first shrinks by an integer factor while the image stays at least this many
#: times the target, then resamples (Pillow's `reducing_gap`): quick, and no worse to see.
REDUCING_GAP = 3.0


def _target(width: int, height: int, size: ThumbnailSize) -> tuple[int, int]:
    """The thumbnail's dimensions for a `width` x `height` source."""
    if size.method == "crop":
        return min(size.width, width), min(size.height, height)
    if size.width * height < size.height * width:
        return size.width, max(1, height * size.width // width)
    return max(1, width * size.height // height), size.height


def _source_box(width: int, height: int, size: ThumbnailSize) -> tuple[float, float, float, float]:
    """The part of the source the thumbnail shows, as fractions of its width and height:
    all of it for "scale", the centre at the box's aspect for "crop"."""
    if size.method == "scale":
        return 0.0, 0.0, 1.0, 1.0
    crop_w = min(width, height * size.width // size.height) or 1
    crop_h = min(height, width * size.height // size.width) or 1
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left / width, top / height, (left + crop_w) / width, (top + crop_h) / height


def decode(image: Image.Image, size: ThumbnailSize) -> Image.Image:
    """`image` (opened, not loaded) decoded for a thumbnail of `size`: a JPEG at the
    smallest DCT scale (1/2, 1/4, 1/8) that keeps the part shown at least as large as the
    thumbnail; any other format whole. Returns the loaded image."""
    if image.format == "JPEG":
        left, top, right, bottom = _source_box(image.width, image.height, size)
        target_w, target_h = _target(image.width, image.height, size)
        # The whole image at the scale where the part shown is still target-sized.
        need_w = -(-target_w * image.width // max(1, round((right - left) * image.width)))
        need_h = -(-target_h * image.height // max(1, round((bottom - top) * image.height)))
        image.draft(image.mode if image.mode in ("RGB", "L") else "RGB", (need_w, need_h))
    image.load()
    return image


def _resize(
    image: Image.Image, box: tuple[float, float, float, float], size: ThumbnailSize
) -> Image.Image:
    """The `box` part (fractions) of the decoded `image`, resized to the thumbnail. No
    crop copy is made: `resize` reads the region straight from the decoded image."""
    from PIL import Image

    left, top, right, bottom = box
    region = (left * image.width, top * image.height, right * image.width, bottom * image.height)
    region_w = max(1, round(region[2] - region[0]))
    region_h = max(1, round(region[3] - region[1]))
    target = _target(region_w, region_h, size)
    if size.method == "scale":
        target = _target(image.width, image.height, size)
    if target[0] >= region_w and target[1] >= region_h:  # never upscale
        return image.crop((round(region[0]), round(region[1]), round(region[2]), round(region[3])))
    if image.mode == "P":
        # A palette image takes a byte a pixel; RGBA takes four. Shrink it (nearest, in
        # palette) to a few times the target before converting, never the whole image.
        step = (
            min(region_w, target[0] * round(REDUCING_GAP)),
            min(region_h, target[1] * round(REDUCING_GAP)),
        )
        image = image.resize(step, Image.Resampling.NEAREST, box=region).convert("RGBA")
        region = (0, 0, step[0], step[1])
    return image.resize(target, Image.Resampling.LANCZOS, box=region, reducing_gap=REDUCING_GAP)
