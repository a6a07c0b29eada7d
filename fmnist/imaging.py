"""Any uploaded picture -> the 28x28 input the network expects.

Fashion-MNIST was made from product photos on a white background: trimmed,
the longest edge resized to 28 pixels, padded to a square and the intensities
negated, so a garment is light on black. Everyday pictures are brought to the
same look: EXIF orientation applied, transparency put on a background, made
grey, inverted when the background is light, cropped to the object, padded to
a square and resized. Every failure is an ``ImageError`` with one line a user
can act on; no Pillow or numpy traceback leaves this module.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fmnist import config
from fmnist.data import IMAGE_SIZE
from fmnist.messages import first_line

# Pillow refuses images above twice this with DecompressionBombError and warns
# above it; the explicit check in decode() turns both into one clear message.
Image.MAX_IMAGE_PIXELS = config.MAX_IMAGE_PIXELS

ACCEPTED_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF"}
ACCEPTED_EXTENSIONS = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
# Pictures are reduced to this size before the pixel work: 28x28 is the goal,
# and a 12-megapixel phone photo would otherwise cost seconds.
WORKING_SIZE = 448
DISPLAY_SIZE = 256


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
    true_label: int | None = None  # guessed from the file name


def decode(payload: bytes) -> Image.Image:
    """Bytes -> an upright, fully loaded first frame, or ImageError."""
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
                    f"{image.format} pictures are not supported; "
                    "use PNG, JPEG, WebP, BMP, GIF or TIFF"
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
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not a picture Pillow can read (or an unsupported format)") from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"too many pixels, the limit is {config.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as error:
        raise ImageError(f"truncated or corrupt picture ({first_line(error)})") from None
    if min(image.size) < 1:
        raise ImageError("the picture has no pixels")
    return image


def to_gray(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 luminance 0-255, transparency put on a background."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        # 16-bit and 32-bit greys: scale their range down to 0-255.
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        return np.clip(values * (255.0 / top), 0, 255)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
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


def fashion_mnist_style(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """Luminance 0-255 -> (28x28 uint8 light-on-black like Fashion-MNIST, whether inverted)."""
    background = float(np.median(_border(gray)))
    inverted = background > 127
    values = 255.0 - gray if inverted else gray
    background = 255.0 - background if inverted else background
    # Take the background level away and stretch the object to the full range:
    # nearly every Fashion-MNIST image has its brightest pixel at 254 or 255.
    values = np.clip(values - background, 0, None)
    peak = float(np.percentile(values, 99.7))
    if peak < 8:
        raise ImageError("the picture is blank: no object stands out from its background")
    values = np.clip(values * (255.0 / peak), 0, 255)

    # Crop to the object: rows and columns with enough clearly lit pixels, which
    # ignores specks of noise and JPEG ringing near the edges.
    mask = values > 40
    rows = np.flatnonzero(mask.sum(axis=1) > max(1, 0.01 * mask.shape[1]))
    cols = np.flatnonzero(mask.sum(axis=0) > max(1, 0.01 * mask.shape[0]))
    if rows.size == 0 or cols.size == 0:
        raise ImageError("the picture is blank: no object stands out from its background")
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
    return np.clip(np.asarray(small), 0, 255).round().astype(np.uint8), inverted


def preprocess(payload: bytes) -> tuple[np.ndarray, Image.Image, bool]:
    """Bytes -> (28x28 uint8 input, RGB thumbnail of the original, whether inverted)."""
    image = decode(payload)
    try:
        image.thumbnail((WORKING_SIZE, WORKING_SIZE), Image.Resampling.LANCZOS)
        gray = to_gray(image)
        display = image.convert("RGBA") if "A" in image.mode else image.convert("RGB")
    except (OSError, ValueError) as error:
        raise ImageError(f"truncated or corrupt picture ({first_line(error)})") from None
    display.thumbnail((DISPLAY_SIZE, DISPLAY_SIZE))
    pixels, inverted = fashion_mnist_style(gray)
    return pixels, display, inverted


def prepare_upload(file_name: str, payload: bytes) -> PreparedImage:
    """Never raises for a bad picture: the reason goes into ``error``."""
    prepared = PreparedImage(file=file_name, true_label=label_from_filename(file_name))
    try:
        prepared.pixels, prepared.original, prepared.inverted = preprocess(payload)
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


def enlarge(pixels: np.ndarray, scale: int = 4) -> np.ndarray:
    """A 28x28 picture made bigger with sharp pixels, for display."""
    return np.kron(pixels, np.ones((scale, scale), dtype=pixels.dtype))


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
