"""Any uploaded picture -> the 28x28 input the network expects.

Fashion-MNIST was made from product photos on a white background: trimmed,
the longest edge resized to 28 pixels, padded to a square and the intensities
negated, so a garment is light on black. Everyday pictures are brought to the
same look: EXIF orientation applied, transparency put on a background, made
grey, inverted when the background is light, cropped to the object, padded to
a square and resized. Every failure is an ``ImageError`` with one line a user
can act on; no Pillow or numpy traceback leaves this module.

HEIC/HEIF (what iPhones save by default) is read through ``pillow-heif``,
registered with Pillow here.
"""

from __future__ import annotations

import base64
import functools
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fmnist import config
from fmnist.data import IMAGE_SIZE

# Pillow refuses images above twice this with DecompressionBombError and warns
# above it; the explicit check in decode() turns both into one clear message.
Image.MAX_IMAGE_PIXELS = config.MAX_IMAGE_PIXELS

ACCEPTED_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF", "HEIF"}
ACCEPTED_EXTENSIONS = [
    "png", "jpg", "jpeg", "heic", "heif", "webp", "bmp", "gif", "tif", "tiff",
]  # fmt: skip
# In words for users, in the order above.
ACCEPTED_NAMES = "PNG, JPEG, HEIC (iPhone photos), WebP, BMP, GIF or TIFF"
# Pictures are reduced to this size before the pixel work: 28x28 is the goal,
# and a 12-megapixel phone photo would otherwise cost seconds.
WORKING_SIZE = 448
DISPLAY_SIZE = 256
# Transparent parts of a shown original are drawn on these two greys, so that a
# white object on a transparent background stays visible (and a black one too).
CHECKER_TILE = 8
CHECKER_GREYS = (128, 168)
# Something must stand out from the background by this many times the
# background's own noise, or the picture counts as blank (its noise, stretched,
# would make up an object). Measured: an empty sheet with camera noise 2.8-4.7,
# unevenly lit 0.8; 2,000 test images drawn as photos 44 and up; a white shoe on
# a grey, grainy floor 7.
MIN_CONTRAST_TO_NOISE = 5.5
BLANK = "the picture is blank: nothing stands out from its background"


DAMAGED = (
    "the picture is damaged or incomplete (perhaps cut short while downloading or copying): "
    "save or export it again"
)


class ImageError(Exception):
    """A picture that cannot be used. The message is one line, fit for users."""


@dataclass
class PreparedImage:
    """One uploaded file: the 28x28 input, a small original to show, or why it failed."""

    file: str
    pixels: np.ndarray | None = None  # (28, 28) uint8, light object on black
    original: Image.Image | None = None  # RGB thumbnail for display
    inverted: bool = False
    error: str | None = None
    true_label: int | None = None  # guessed from the file name, to be confirmed by the user
    # Where the 28x28 input lies on ``original``: (top, left, side) in its pixels.
    square: tuple[float, float, float] | None = None


@functools.cache
def _read_heic() -> None:
    """iPhones save photos as HEIC by default: without this Pillow cannot open them.
    On the first picture, not at import: loading libheif takes 40 ms, which pages that
    read no picture (Explore) do not pay."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def decode(payload: bytes) -> Image.Image:
    """Bytes -> an upright, fully loaded first frame, or ImageError."""
    _read_heic()
    if not payload:
        raise ImageError("empty file")
    if len(payload) > config.MAX_UPLOAD_BYTES:
        raise ImageError(
            f"file too large: {len(payload) / 1e6:.1f} MB, the limit is {config.MAX_UPLOAD_MB} MB"
        )
    try:
        with warnings.catch_warnings():
            # Image.open reads only the header; the size check below gives a
            # clearer message than Pillow's warning (Pillow still raises on its
            # own above twice the limit).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(payload))
            if image.format not in ACCEPTED_FORMATS:
                raise ImageError(
                    f"this is a {image.format} picture, which the app cannot use: "
                    f"save it as {ACCEPTED_NAMES}"
                )
            width, height = image.size
            if width * height > config.MAX_IMAGE_PIXELS:
                raise ImageError(
                    f"too many pixels: {width}x{height} is {width * height / 1e6:.0f} megapixels, "
                    f"the limit is {config.MAX_IMAGE_PIXELS / 1e6:.0f}"
                )
            if image.format == "JPEG":
                # Let libjpeg decode at a reduced scale: much faster for phone photos.
                image.draft("RGB", (WORKING_SIZE, WORKING_SIZE))
            image.seek(0)  # animated GIF, WebP or multi-page TIFF: the first frame
            image.load()
            image = ImageOps.exif_transpose(image)
            image = _eight_bit(image)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            f"this file is not a picture the app can open: use a photo saved as {ACCEPTED_NAMES}"
        ) from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"too many pixels, the limit is {config.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError):
        raise ImageError(DAMAGED) from None
    if min(image.size) < 1:
        raise ImageError("the picture has no pixels")
    return image


def _eight_bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit greyscale (scanners, scientific tools) as 8-bit "L": Pillow's resizing
    refuses those modes beyond its simplest paths ("image has wrong mode" at 2,000 px).
    Integer arithmetic in place where it can: a 40-megapixel picture stays a few bytes
    a pixel."""
    if image.mode not in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return image
    values = np.asarray(image)
    if image.mode == "F":
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        scaled = (np.nan_to_num(values, nan=low) - low) * (255.0 / max(high - low, 1e-12))
        return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L")
    # 16-bit data fills 0-65535 (also when Pillow reads it as 32-bit "I"): keep the top byte.
    if image.mode.startswith("I;16") or int(values.max(initial=0)) > 255:
        values = np.clip(values, 0, 65535) >> 8
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")


def to_gray(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 luminance 0-255, transparency put on a background."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        # 16-bit and 32-bit greys: scale their range down to 0-255.
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        return np.clip(values * (255.0 / top), 0, 255)
    if has_transparency(image):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        alpha = rgba[..., 3] / 255.0
        opaque = alpha > 0.5
        # A light object goes on black and a dark one on white, so it stays visible.
        object_is_light = opaque.any() and float(luminance[opaque].mean()) > 160
        background = 0.0 if object_is_light else 255.0
        return luminance * alpha + background * (1.0 - alpha)
    # CMYK, YCbCr, palette and the rest go through RGB, which Pillow converts correctly.
    return np.asarray(image.convert("RGB").convert("L"), dtype=np.float32)


def _border(values: np.ndarray) -> np.ndarray:
    ring = max(1, min(values.shape) // 20)
    return np.concatenate(
        [
            values[:ring].ravel(),
            values[-ring:].ravel(),
            values[:, :ring].ravel(),
            values[:, -ring:].ravel(),
        ]
    )


def contrast_to_noise(gray: np.ndarray) -> float:
    """How far the most contrasted pixels stand out from the background, in units of its noise.

    The background is the picture's border: its level is the median, its noise
    the spread around it (median absolute deviation, at least one grey level),
    both robust to an object that touches the border. Uneven light counts as
    noise: an empty sheet lit from one side is blank too.
    """
    edge = _border(gray)
    level = float(np.median(edge))
    noise = max(1.0, 1.4826 * float(np.median(np.abs(edge - level))))
    return float(np.percentile(np.abs(gray - level), 99.7)) / noise


def fashion_mnist_style(gray: np.ndarray) -> tuple[np.ndarray, bool, tuple[int, int, int]]:
    """Luminance 0-255 -> (28x28 uint8 light-on-black like Fashion-MNIST, whether inverted,
    the (top, left, side) of the square it shows in ``gray``'s pixels)."""
    if contrast_to_noise(gray) < MIN_CONTRAST_TO_NOISE:
        # An empty sheet, a wall: stretching its noise would invent an object.
        raise ImageError(BLANK)
    background = float(np.median(_border(gray)))
    inverted = background > 127
    values = 255.0 - gray if inverted else gray
    background = 255.0 - background if inverted else background
    # Take the background level away and stretch the object to the full range:
    # nearly every Fashion-MNIST image has its brightest pixel at 254 or 255.
    values = np.clip(values - background, 0, None)
    peak = float(np.percentile(values, 99.7))
    if peak < 8:
        raise ImageError(BLANK)
    values = np.clip(values * (255.0 / peak), 0, 255)

    # Crop to the object: rows and columns with enough clearly lit pixels, which
    # ignores specks of noise and JPEG ringing near the edges.
    mask = values > 40
    rows = np.flatnonzero(mask.sum(axis=1) > max(1, 0.01 * mask.shape[1]))
    cols = np.flatnonzero(mask.sum(axis=0) > max(1, 0.01 * mask.shape[0]))
    if rows.size == 0 or cols.size == 0:
        raise ImageError(BLANK)
    values = values[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    # Pad to a square with the object centred, then resize the longest edge to 28.
    height, width = values.shape
    side = max(height, width)
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    square[top : top + height, left : left + width] = values
    small = Image.fromarray(square, mode="F").resize(
        (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS
    )
    placed = (int(rows[0]) - top, int(cols[0]) - left, side)
    return np.clip(np.asarray(small), 0, 255).round().astype(np.uint8), inverted, placed


def has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def on_checkerboard(image: Image.Image) -> Image.Image:
    """An RGB copy with transparent parts drawn on a grey checkerboard, as image editors do."""
    rgba = image.convert("RGBA")
    width, height = rgba.size
    rows = (np.arange(height) // CHECKER_TILE)[:, None]
    cols = (np.arange(width) // CHECKER_TILE)[None, :]
    light, dark = CHECKER_GREYS
    board = np.where((rows + cols) % 2 == 0, light, dark).astype(np.uint8)
    background = Image.fromarray(np.repeat(board[..., None], 3, axis=2)).convert("RGBA")
    return Image.alpha_composite(background, rgba).convert("RGB")


def preprocess(
    payload: bytes,
) -> tuple[np.ndarray, Image.Image, bool, tuple[float, float, float]]:
    """Bytes -> (28x28 uint8 input, RGB thumbnail of the original, whether inverted,
    the (top, left, side) of the input's square on the thumbnail)."""
    image = decode(payload)
    try:
        image.thumbnail((WORKING_SIZE, WORKING_SIZE), Image.Resampling.LANCZOS)
        gray = to_gray(image)
        display = image.copy() if has_transparency(image) else image.convert("RGB")
        display.thumbnail((DISPLAY_SIZE, DISPLAY_SIZE))
        if has_transparency(display):
            display = on_checkerboard(display)
    except (OSError, ValueError):
        raise ImageError(DAMAGED) from None
    pixels, inverted, (top, left, side) = fashion_mnist_style(gray)
    scale = display.width / gray.shape[1]
    return pixels, display, inverted, (top * scale, left * scale, side * scale)


def prepare_upload(file_name: str, payload: bytes) -> PreparedImage:
    """Never raises for a bad picture: the reason goes into ``error``."""
    prepared = PreparedImage(file=file_name, true_label=label_from_filename(file_name))
    try:
        prepared.pixels, prepared.original, prepared.inverted, prepared.square = preprocess(payload)
    except ImageError as error:
        prepared.error = str(error)
    except MemoryError:
        prepared.error = "the picture is too large to decode in memory"
    return prepared


# Words in a file name that name a class; the longest match wins, so
# "t-shirt" is a T-shirt/top and not a Shirt, and "ankle-boot" not just a boot.
_CLASS_WORDS: dict[str, int] = {
    "t shirt": 0, "tshirt": 0, "tee": 0, "top": 0, "t shirt top": 0,
    "trouser": 1, "trousers": 1, "pants": 1, "jeans": 1,
    "pullover": 2, "sweater": 2, "jumper": 2, "hoodie": 2,
    "dress": 3,
    "coat": 4, "jacket": 4,
    "sandal": 5, "sandals": 5,
    "shirt": 6, "blouse": 6,
    "sneaker": 7, "sneakers": 7, "trainer": 7, "trainers": 7,
    "bag": 8, "handbag": 8, "purse": 8, "backpack": 8,
    "ankle boot": 9, "boot": 9, "boots": 9, "ankle boots": 9,
}  # fmt: skip


def label_from_filename(file_name: str) -> int | None:
    """'sneaker_02.jpg' -> 7, 'ankle-boot.png' -> 9, 'IMG_1234.jpg' -> None."""
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    text = " " + re.sub(r"[^a-z]+", " ", stem).strip() + " "
    best: tuple[int, int] | None = None
    for words, label in _CLASS_WORDS.items():
        if f" {words} " in text and (best is None or len(words) > best[0]):
            best = (len(words), label)
    return best[1] if best else None


# A heat scale from dark purple through red to pale yellow (after matplotlib's inferno),
# readable over grey pictures: (position, R, G, B).
HEAT_STOPS = np.array(
    [
        (0.00, 40, 11, 84), (0.25, 101, 21, 110), (0.50, 188, 55, 84),
        (0.75, 249, 142, 9), (1.00, 252, 255, 164),
    ]
)  # fmt: skip
HEAT_OPACITY = 0.7


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB uint8 on the heat scale."""
    channels = [np.interp(heat, HEAT_STOPS[:, 0], HEAT_STOPS[:, c]) for c in (1, 2, 3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def heat_overlay(picture: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """A grey or RGB uint8 picture with ``heat`` (same height and width, in [0, 1]) laid over
    it: the hotter, the more opaque, so that the cold parts still show the picture."""
    base = np.repeat(picture[..., None], 3, axis=2) if picture.ndim == 2 else picture
    # The square root lifts the middle of the scale: half the strongest push still shows.
    alpha = (HEAT_OPACITY * np.sqrt(np.clip(heat, 0, 1)))[..., None]
    blended = base * (1 - alpha) + heat_colours(heat) * alpha
    return blended.round().astype(np.uint8)


def heat_on_original(
    original: Image.Image, heat: np.ndarray, square: tuple[float, float, float]
) -> np.ndarray:
    """A 28x28 heatmap stretched over the part of ``original`` the network saw, then laid
    over the photo (zero outside that part)."""
    top, left, side = (round(v) for v in square)
    side = max(side, 1)
    stretched = np.asarray(
        Image.fromarray(heat.astype(np.float32), mode="F").resize(
            (side, side), Image.Resampling.BILINEAR
        )
    )
    width, height = original.size
    layer = np.zeros((height, width), dtype=np.float32)
    # The square may reach past the photo's edges (it was padded to be square).
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + side, height), min(left + side, width)
    if y1 > y0 and x1 > x0:
        layer[y0:y1, x0:x1] = stretched[y0 - top : y1 - top, x0 - left : x1 - left]
    return heat_overlay(np.asarray(original.convert("RGB")), layer)


def mosaic(
    maps: np.ndarray, columns: int, scale: int, signed: bool = False, gap: int = 2
) -> np.ndarray:
    """(H, W, N) maps -> one RGB picture of N tiles in rows of ``columns``, each tile on its
    own scale: activations on the heat scale (dark: none, yellow: the map's strongest),
    weights (``signed``) blue below zero, white at zero, red above."""
    height, width, count = maps.shape
    rows = -(-count // columns)
    tile_h, tile_w = height * scale, width * scale
    out = np.full(
        (rows * (tile_h + gap) - gap, columns * (tile_w + gap) - gap, 3), 255, dtype=np.uint8
    )
    for index in range(count):
        values = maps[:, :, index].astype(np.float64)
        if signed:
            reach = np.abs(values).max() or 1.0
            colours = _diverging(values / reach)
        else:
            low, high = values.min(), values.max()
            colours = heat_colours((values - low) / (high - low) if high > low else values * 0)
        row, column = divmod(index, columns)
        top, left = row * (tile_h + gap), column * (tile_w + gap)
        out[top : top + tile_h, left : left + tile_w] = enlarge(colours, scale)
    return out


def _diverging(values: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] -> RGB: blue (-1), white (0), red (1)."""
    blue, red = np.array([33, 102, 172]), np.array([178, 24, 43])
    white = np.array([247, 247, 247])
    weight = np.abs(values)[..., None]
    ends = np.where(values[..., None] < 0, blue, red)
    return (white * (1 - weight) + ends * weight).round().astype(np.uint8)


def png_data_uri(pixels: np.ndarray) -> str:
    """A small uint8 picture as a PNG ``data:`` URI, for pictures written into a page's HTML."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def enlarge(pixels: np.ndarray, scale: int = 4) -> np.ndarray:
    """A 28x28 picture (grey or RGB) made bigger with sharp pixels, for display."""
    return pixels.repeat(scale, axis=0).repeat(scale, axis=1)


def framed(
    pixels: np.ndarray, colour: tuple[int, int, int], scale: int = 3, border: int = 4
) -> np.ndarray:
    """An enlarged grey picture inside a coloured frame (green right, red wrong, as in seed 004)."""
    grey = enlarge(pixels, scale)
    height, width = grey.shape
    frame = np.empty((height + 2 * border, width + 2 * border, 3), dtype=np.uint8)
    frame[:] = colour
    frame[border : border + height, border : border + width] = grey[..., None]
    return frame
