"""Preprocessing of everyday pictures into Fashion-MNIST's look, and bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fmnist import config, imaging
from fmnist.imaging import ImageError, label_from_filename, preprocess


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def boot_picture(
    size: tuple[int, int] = (400, 300),
    ink: tuple[int, ...] = (40, 40, 90),
    paper: tuple[int, ...] = (250, 250, 250),
    mode: str = "RGB",
) -> Image.Image:
    """A dark, L-shaped 'ankle boot' on a light background, wider than tall, off centre."""
    image = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(image)
    draw.rectangle((60, 60, 160, 230), fill=ink)  # the shaft
    draw.rectangle((60, 180, 330, 230), fill=ink)  # the foot
    return image


def reference() -> np.ndarray:
    pixels, _, inverted, _ = preprocess(encode(boot_picture(), "PNG"))
    assert inverted
    return pixels


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def test_dark_product_on_white_becomes_light_on_black_and_fills_the_frame() -> None:
    pixels = reference()
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8
    assert pixels.max() >= 250  # stretched like Fashion-MNIST
    corners = [pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]]
    assert max(corners) < 10  # the background is black
    # Cropped to the object: it spans the full width (its longest edge) ...
    lit_columns = np.flatnonzero(pixels.max(axis=0) > 60)
    assert lit_columns[0] <= 1 and lit_columns[-1] >= 26
    # ... and is centred vertically, padded to a square.
    lit_rows = np.flatnonzero(pixels.max(axis=1) > 60)
    assert abs((lit_rows[0] + lit_rows[-1]) / 2 - 13.5) < 2


def test_light_object_on_dark_background_is_not_inverted() -> None:
    picture = boot_picture(ink=(230, 230, 230), paper=(10, 10, 10))
    pixels, _, inverted, _ = preprocess(encode(picture, "PNG"))
    assert not inverted
    assert similarity(pixels, reference()) > 0.95


def test_transparent_png_puts_the_object_on_a_background() -> None:
    picture = boot_picture(ink=(40, 40, 90, 255), paper=(0, 0, 0, 0), mode="RGBA")
    pixels, original, _, _ = preprocess(encode(picture, "PNG"))
    assert similarity(pixels, reference()) > 0.95
    assert original.size[0] <= imaging.DISPLAY_SIZE


def test_exif_rotated_jpeg_is_turned_upright() -> None:
    # The camera stored the picture on its side and says so in the EXIF
    # orientation tag (6: rotate 90 degrees clockwise to view).
    sideways = boot_picture().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels, _, _, _ = preprocess(encode(sideways, "JPEG", exif=exif, quality=95))
    assert similarity(pixels, reference()) > 0.9
    ignored, _, _, _ = preprocess(encode(sideways, "JPEG", quality=95))
    assert similarity(ignored, reference()) < 0.6  # without the tag it would stay sideways


@pytest.mark.parametrize("scale", [1, 6, 9], ids=["400px", "2400px", "3600px"])
def test_sixteen_bit_png(scale: int) -> None:
    # Scanners and medical or scientific tools write 16-bit greyscale; at 2,000 px and
    # more, Pillow's fast reduction refused its mode ("image has wrong mode").
    boot = boot_picture().resize((400 * scale, 300 * scale), Image.Resampling.NEAREST)
    grey = np.asarray(boot.convert("L"), dtype=np.uint16) * 257
    picture = Image.fromarray(grey.astype(np.uint16))
    payload = encode(picture, "PNG")
    assert Image.open(io.BytesIO(payload)).mode.startswith("I")
    pixels, _, _, _ = preprocess(payload)
    assert similarity(pixels, reference()) > 0.97


def test_cmyk_jpeg() -> None:
    payload = encode(boot_picture().convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(payload)).mode == "CMYK"
    pixels, _, _, _ = preprocess(payload)
    assert similarity(pixels, reference()) > 0.95


def test_animated_gif_uses_the_first_frame() -> None:
    first = boot_picture()
    second = Image.new("RGB", first.size, (250, 250, 250))
    ImageDraw.Draw(second).ellipse((100, 20, 300, 280), fill=(0, 0, 0))
    payload = encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    assert Image.open(io.BytesIO(payload)).n_frames == 2
    pixels, _, _, _ = preprocess(payload)
    assert similarity(pixels, reference()) > 0.95


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF"])
def test_other_formats(fmt: str) -> None:
    pixels, _, _, _ = preprocess(encode(boot_picture(), fmt))
    assert similarity(pixels, reference()) > 0.95


def test_not_an_image_is_said_in_plain_words() -> None:
    with pytest.raises(ImageError) as raised:
        preprocess(b"name,size\nshirt,M\n")
    message = str(raised.value)
    assert message.startswith("this file is not a picture the app can open")
    assert "HEIC" in message and "JPEG" in message
    assert "Pillow" not in message


def test_truncated_png_and_jpeg() -> None:
    for fmt in ("PNG", "JPEG"):
        payload = encode(boot_picture(), fmt)
        with pytest.raises(ImageError, match="damaged or incomplete") as raised:
            preprocess(payload[: len(payload) // 2])
        assert "(" not in str(raised.value).split("(perhaps")[0]  # no library's own words


def test_iphone_heic_photo(tmp_path) -> None:
    # iPhones save HEIC by default; pillow-heif writes one here like a phone would.
    import pillow_heif

    path = tmp_path / "IMG_0001.HEIC"
    pillow_heif.from_pillow(boot_picture()).save(path, quality=90)
    payload = path.read_bytes()
    assert payload[4:12] == b"ftypheic"
    pixels, original, inverted, _ = preprocess(payload)
    assert inverted and similarity(pixels, reference()) > 0.95
    assert original.mode == "RGB"
    assert {"heic", "heif"} <= set(imaging.ACCEPTED_EXTENSIONS)


def test_white_object_on_transparency_is_shown_on_a_checkerboard() -> None:
    # A white T-shirt cut out on a transparent background: on a white page it vanished.
    picture = boot_picture(ink=(255, 255, 255, 255), paper=(0, 0, 0, 0), mode="RGBA")
    pixels, original, inverted, _ = preprocess(encode(picture, "PNG"))
    assert not inverted and similarity(pixels, reference()) > 0.95
    assert original.mode == "RGB"
    shown = np.asarray(original)
    light, dark = imaging.CHECKER_GREYS
    # The transparent corner is the checkerboard's two greys, not white ...
    corner = shown[: 2 * imaging.CHECKER_TILE, : 2 * imaging.CHECKER_TILE, 0]
    assert set(np.unique(corner).tolist()) == {light, dark}
    # ... and the object is still white on it.
    scale = original.size[0] / picture.size[0]
    assert shown[int(200 * scale), int(100 * scale)].tolist() == [255, 255, 255]


def test_opaque_pictures_are_shown_as_they_are() -> None:
    _, original, _, _ = preprocess(encode(boot_picture(), "PNG"))
    assert original.mode == "RGB" and np.asarray(original)[0, 0].tolist() == [250, 250, 250]


def test_too_many_pixels() -> None:
    # A real decompression bomb: 48 megapixels of one colour in a few kilobytes.
    bomb = encode(Image.new("1", (8000, 6000)), "PNG")
    assert len(bomb) < 200_000
    with pytest.raises(ImageError, match="too many pixels: 8000x6000 is 48 megapixels"):
        preprocess(bomb)
    assert config.MAX_IMAGE_PIXELS < Image.MAX_IMAGE_PIXELS * 2  # Pillow enforces it too


def test_too_many_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(ImageError, match="file too large"):
        preprocess(encode(boot_picture(), "PNG"))


def test_empty_and_blank_pictures() -> None:
    with pytest.raises(ImageError, match="empty file"):
        preprocess(b"")
    with pytest.raises(ImageError, match="blank"):
        preprocess(encode(Image.new("RGB", (100, 100), "white"), "PNG"))


@pytest.mark.parametrize("noise", [4, 8, 13])
def test_a_photo_of_an_empty_sheet_is_blank_not_an_object(noise: float) -> None:
    # Stretching the camera noise of an empty sheet used to make up an "object"
    # that the network called a bag at 95%.
    rng = np.random.default_rng(noise)
    sheet = np.clip(235 + rng.normal(0, noise, (300, 400, 3)), 0, 255).astype(np.uint8)
    with pytest.raises(ImageError, match="blank"):
        preprocess(encode(Image.fromarray(sheet), "JPEG"))


def test_an_unevenly_lit_empty_sheet_is_blank() -> None:
    ramp = np.tile(np.linspace(200, 255, 400), (300, 1))
    rng = np.random.default_rng(0)
    sheet = np.clip(ramp[..., None] + rng.normal(0, 3, (300, 400, 3)), 0, 255).astype(np.uint8)
    with pytest.raises(ImageError, match="blank"):
        preprocess(encode(Image.fromarray(sheet), "JPEG"))


def test_a_pale_object_on_a_grainy_floor_is_not_blank() -> None:
    # A white sneaker on a light grey, grainy floor: low contrast, still an object.
    rng = np.random.default_rng(0)
    floor = np.clip(200 + rng.normal(0, 8, (300, 400)), 0, 255)
    floor[150:230, 80:330] = 245 + rng.normal(0, 3, (80, 250))
    gray = imaging.to_gray(Image.fromarray(floor.astype(np.uint8)))
    assert imaging.contrast_to_noise(gray) > imaging.MIN_CONTRAST_TO_NOISE
    preprocess(encode(Image.fromarray(floor.astype(np.uint8)), "JPEG"))  # not refused


def test_prepare_upload_never_raises_for_a_bad_file() -> None:
    good = imaging.prepare_upload("ankle-boot.png", encode(boot_picture(), "PNG"))
    bad = imaging.prepare_upload("notes.png", b"hello")
    assert good.error is None and good.pixels is not None and good.true_label == 9
    assert bad.pixels is None and bad.error and "\n" not in bad.error


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("sneaker_02.jpg", 7),
        ("ankle-boot.png", 9),
        ("My T-Shirt.jpeg", 0),
        ("red_shirt.png", 6),
        ("Trousers (blue).webp", 1),
        ("handbag.gif", 8),
        ("IMG_1234.jpg", None),
        ("bootcamp.png", None),
    ],
)
def test_true_class_from_the_file_name(name: str, label: int | None) -> None:
    assert label_from_filename(name) == label


def test_the_heatmap_lands_on_the_part_of_the_photo_the_network_saw() -> None:
    # The boot spans x 60-330 and y 60-230 of a 400x300 photo; the network's square is
    # its width (271 px) centred on it, the photo shown at 256 px wide (scale 0.64).
    pixels, original, _, square = preprocess(encode(boot_picture(), "PNG"))
    scale = original.width / 400
    top, left, side = square
    assert side == pytest.approx(271 * scale, abs=2) and left == pytest.approx(60 * scale, abs=2)
    assert top == pytest.approx((60 - (271 - 171) // 2) * scale, abs=2)
    heat = np.zeros((28, 28))
    heat[20:, :] = 1.0  # the bottom of the network's picture: the boot's foot
    shown = imaging.heat_on_original(original, heat, square)
    changed = np.any(shown != np.asarray(original), axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    cell = side / 28  # the stretched map blends over one of its cells at an edge
    assert rows[0] >= top + (20 - 1) * cell and rows[-1] <= top + side + 1
    assert cols[0] >= left - 1 and cols[-1] <= left + side + 1
    # Cold is see-through: the 28x28 overlay of no heat is the picture itself, in colour.
    assert np.array_equal(imaging.heat_overlay(pixels, np.zeros((28, 28)))[..., 0], pixels)
