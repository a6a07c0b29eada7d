"""Find, verify and load the original Fashion-MNIST IDX files.

The files are looked for, in order, in ``$FMNIST_DATA_DIR``, in the folder of the
Debian package ``dataset-fashion-mnist``, in Keras's download cache, and last
through Keras's own downloader. Whatever the source, every file is checked
(magic number, counts, shape, label range and the checksum of its decompressed
contents) so that a truncated or wrong file gives one clear message instead of
a numpy traceback in the middle of training.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist import config
from fmnist.messages import first_line

log = logging.getLogger(__name__)

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# At most 8 characters and still unambiguous: table headers in a terminal.
CLASS_SHORT_NAMES: tuple[str, ...] = (
    "T-shirt",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 28

# IDX magic numbers: 0x00000801 for unsigned-byte vectors (labels), 0x00000803
# for unsigned-byte 3-D arrays (images).
_LABELS_MAGIC = 2049
_IMAGES_MAGIC = 2051


@dataclass(frozen=True)
class IdxFile:
    name: str  # file name without the .gz suffix
    magic: int
    count: int
    sha256: str  # of the decompressed contents, so .gz files of any packer pass


IDX_FILES: dict[str, IdxFile] = {
    "x_train": IdxFile(
        "train-images-idx3-ubyte",
        _IMAGES_MAGIC,
        60_000,
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "y_train": IdxFile(
        "train-labels-idx1-ubyte",
        _LABELS_MAGIC,
        60_000,
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "x_test": IdxFile(
        "t10k-images-idx3-ubyte",
        _IMAGES_MAGIC,
        10_000,
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "y_test": IdxFile(
        "t10k-labels-idx1-ubyte",
        _LABELS_MAGIC,
        10_000,
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}

FIX_HINT = (
    "install the Debian package dataset-fashion-mnist (sudo apt-get install "
    "dataset-fashion-mnist), or set FMNIST_DATA_DIR to a folder holding the four "
    "original IDX files"
)


class DataError(Exception):
    """The dataset is missing or damaged. The message is one line, fit for users."""


@dataclass(frozen=True)
class Dataset:
    """The 70,000 images as read-only uint8 arrays, and where they came from."""

    x_train: np.ndarray  # (60000, 28, 28) uint8
    y_train: np.ndarray  # (60000,) uint8
    x_test: np.ndarray  # (10000, 28, 28) uint8
    y_test: np.ndarray  # (10000,) uint8
    source: str  # which of the sources below was used
    path: Path

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.x_train, self.y_train, self.x_test, self.y_test))


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path, expected: IdxFile, verify_checksum: bool = True) -> np.ndarray:
    """Read one IDX file (gzipped or not) and check it against what it should hold.

    A gzipped file is read from its decompressed copy in ``config.CACHE_DIR`` when there
    is one, made from this very file (its path, size and time of change name the copy);
    the copy goes through the same checks, and a damaged one is replaced.
    """
    copy = _decompressed_copy(path) if path.suffix == ".gz" else None
    if copy is not None and _size(copy) == _idx_size(expected):
        try:
            return _checked_array(copy.read_bytes(), path, expected, verify_checksum)
        except (OSError, DataError) as error:
            log.info("%s: its decompressed copy is not used (%s)", path, first_line(str(error)))
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot be read or decompressed ({error}); {FIX_HINT}") from None
    array = _checked_array(raw, path, expected, verify_checksum)
    if copy is not None:
        _keep_copy(copy, raw)
    return array


def _idx_size(expected: IdxFile) -> int:
    """The bytes of the decompressed file: its header and its items."""
    if expected.magic == _IMAGES_MAGIC:
        return 16 + expected.count * IMAGE_SIZE * IMAGE_SIZE
    return 8 + expected.count


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _decompressed_copy(path: Path) -> Path | None:
    """``<name>-<where>-<which version>``: the copies of each source folder's file apart."""
    try:
        found = path.stat()
        where = str(path.resolve())
    except OSError:
        return None
    version = _short_hash(f"{found.st_size}:{found.st_mtime_ns}")
    return config.CACHE_DIR / f"{path.name.removesuffix('.gz')}-{_short_hash(where)}-{version}"


def _keep_copy(copy: Path, raw: bytes) -> None:
    """Write ``copy`` whole or not at all (a temporary file, renamed); the copies of older
    versions of the same file go, and any temporary file over an hour old (a process
    killed while writing). A folder that cannot be written only costs the next load its
    speed."""
    part: Path | None = None
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=copy.parent, prefix=".part-", delete=False) as out:
            part = Path(out.name)
            out.write(raw)
        os.chmod(part, 0o644)  # a cache folder shared by several users serves them all
        os.replace(part, copy)
        part = None
        same_file = copy.name.rsplit("-", 1)[0]
        for older in copy.parent.glob(f"{same_file}-*"):
            if older != copy:
                older.unlink(missing_ok=True)
        for stale in copy.parent.glob(".part-*"):
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 3600:
                    stale.unlink()
    except OSError as error:
        log.info("%s: not kept (%s)", copy, error)
    finally:
        if part is not None:
            with contextlib.suppress(OSError):
                part.unlink()


def _checked_array(raw: bytes, path: Path, expected: IdxFile, verify_checksum: bool) -> np.ndarray:
    """The array in ``raw``, the decompressed bytes of ``path``, if they are what it should hold."""
    if len(raw) < 8:
        raise DataError(f"{path}: too short to be an IDX file; {FIX_HINT}")
    magic = int.from_bytes(raw[0:4], "big")
    if magic != expected.magic:
        raise DataError(
            f"{path}: wrong magic number {magic} (expected {expected.magic}), "
            f"this is not the {expected.name} file; {FIX_HINT}"
        )
    count = int.from_bytes(raw[4:8], "big")
    if count != expected.count:
        raise DataError(
            f"{path}: holds {count:,} items where Fashion-MNIST has {expected.count:,}; {FIX_HINT}"
        )
    if expected.magic == _IMAGES_MAGIC:
        rows = int.from_bytes(raw[8:12], "big")
        cols = int.from_bytes(raw[12:16], "big")
        if (rows, cols) != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(f"{path}: images are {rows}x{cols}, not 28x28; {FIX_HINT}")
        header, shape = 16, (count, IMAGE_SIZE, IMAGE_SIZE)
    else:
        header, shape = 8, (count,)
    expected_size = header + int(np.prod(shape))
    if len(raw) != expected_size:
        raise DataError(
            f"{path}: is {len(raw):,} bytes once decompressed where {expected_size:,} are "
            f"expected (truncated or padded); {FIX_HINT}"
        )
    if verify_checksum and hashlib.sha256(raw).hexdigest() != expected.sha256:
        raise DataError(
            f"{path}: checksum does not match the original Fashion-MNIST file; {FIX_HINT}"
        )
    # frombuffer over bytes gives a read-only array: nothing downstream may mutate
    # the shared dataset by accident.
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    if expected.magic == _LABELS_MAGIC and array.max(initial=0) >= NUM_CLASSES:
        raise DataError(f"{path}: has labels above {NUM_CLASSES - 1}; {FIX_HINT}")
    return array


def load_from_folder(folder: Path, source: str = "folder", verify_checksum: bool = True) -> Dataset:
    """Load the four files from one folder, or raise DataError naming what is wrong."""
    arrays: dict[str, np.ndarray] = {}
    for key, expected in IDX_FILES.items():
        path = _find_file(folder, expected.name)
        if path is None:
            raise DataError(f"{folder / (expected.name + '.gz')}: missing; {FIX_HINT}")
        arrays[key] = read_idx(path, expected, verify_checksum=verify_checksum)
    return Dataset(**arrays, source=source, path=folder)


def candidate_sources() -> list[tuple[str, Path]]:
    """Where to look, in order, as (source name, folder)."""
    sources = []
    env_dir = os.environ.get("FMNIST_DATA_DIR")
    if env_dir:
        sources.append(("FMNIST_DATA_DIR", Path(env_dir).expanduser()))
    sources.append(("Debian package dataset-fashion-mnist", config.DEBIAN_DATA_DIR))
    sources.append(("Keras cache", config.KERAS_CACHE_DIR))
    return sources


def _has_any_file(folder: Path) -> bool:
    return any(_find_file(folder, f.name) for f in IDX_FILES.values())


def _local_source() -> tuple[str, Path] | None:
    """The first source with any of the files (FMNIST_DATA_DIR, when set, must have them)."""
    for source, folder in candidate_sources():
        if source == "FMNIST_DATA_DIR" or _has_any_file(folder):
            return source, folder
    return None


def has_local_copy() -> bool:
    """Whether load_dataset reads files on this machine, rather than Keras's downloader."""
    return _local_source() is not None


def load_dataset(allow_download: bool = True) -> Dataset:
    """Load Fashion-MNIST from the first source that has it.

    A folder that holds some of the files but not all of them, or damaged ones,
    is an error rather than a reason to look elsewhere: the user should hear
    about a broken installation instead of silently training on another copy.
    """
    found = _local_source()
    if found is not None:
        source, folder = found
        return load_from_folder(folder, source)
    if allow_download:
        return _download_with_keras()
    raise DataError(f"Fashion-MNIST was not found; {FIX_HINT}")


def _download_with_keras() -> Dataset:
    # Imported here so that pages which only explore the data never pay for
    # importing TensorFlow when the files are installed.
    try:
        import keras

        keras.datasets.fashion_mnist.load_data()
    except Exception as error:  # noqa: BLE001 - any network or disk failure
        raise DataError(
            "Fashion-MNIST was not found and Keras could not download it "
            f"({first_line(error)}); "
            f"{FIX_HINT}"
        ) from None
    return load_from_folder(config.KERAS_CACHE_DIR, "Keras downloader")


def class_counts(labels: np.ndarray) -> np.ndarray:
    """How many images each class has, in class order."""
    return np.bincount(labels, minlength=NUM_CLASSES)
