"""The loader on small IDX files the tests write, and on the real Fashion-MNIST."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from fmnist import data
from fmnist.data import DataError, IdxFile, read_idx

from .conftest import write_idx


def test_good_file_reads_back_exactly(tmp_path: Path, small_images: np.ndarray) -> None:
    path = tmp_path / "images.gz"
    digest = write_idx(path, 2051, (5, 28, 28), small_images.tobytes())
    array = read_idx(path, IdxFile("images", 2051, 5, digest))
    assert array.shape == (5, 28, 28) and array.dtype == np.uint8
    np.testing.assert_array_equal(array, small_images)
    assert not array.flags.writeable  # the shared dataset cannot be mutated by accident


def test_uncompressed_file_is_accepted(tmp_path: Path) -> None:
    labels = np.array([0, 3, 9], dtype=np.uint8)
    path = tmp_path / "labels"
    digest = write_idx(path, 2049, (3,), labels.tobytes(), gz=False)
    np.testing.assert_array_equal(read_idx(path, IdxFile("labels", 2049, 3, digest)), labels)


def test_wrong_magic_names_the_file(tmp_path: Path, small_images: np.ndarray) -> None:
    path = tmp_path / "images.gz"
    digest = write_idx(path, 2049, (5, 28, 28), small_images.tobytes())
    with pytest.raises(DataError, match=r"images\.gz: wrong magic number 2049") as caught:
        read_idx(path, IdxFile("images", 2051, 5, digest))
    assert "\n" not in str(caught.value)


def test_truncated_file(tmp_path: Path, small_images: np.ndarray) -> None:
    path = tmp_path / "images.gz"
    digest = write_idx(path, 2051, (5, 28, 28), small_images.tobytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path, IdxFile("images", 2051, 5, digest))


def test_truncated_gzip_stream(tmp_path: Path, small_images: np.ndarray) -> None:
    path = tmp_path / "images.gz"
    digest = write_idx(path, 2051, (5, 28, 28), small_images.tobytes())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot be read or decompressed"):
        read_idx(path, IdxFile("images", 2051, 5, digest))


def test_counts_that_disagree(tmp_path: Path, small_images: np.ndarray) -> None:
    path = tmp_path / "images.gz"
    digest = write_idx(path, 2051, (4, 28, 28), small_images.tobytes())
    with pytest.raises(DataError, match="holds 4 items where Fashion-MNIST has 5"):
        read_idx(path, IdxFile("images", 2051, 5, digest))


def test_wrong_image_size(tmp_path: Path) -> None:
    path = tmp_path / "images.gz"
    digest = write_idx(path, 2051, (2, 32, 32), bytes(2 * 32 * 32))
    with pytest.raises(DataError, match="32x32, not 28x28"):
        read_idx(path, IdxFile("images", 2051, 2, digest))


def test_checksum_mismatch(tmp_path: Path, small_images: np.ndarray) -> None:
    path = tmp_path / "images.gz"
    write_idx(path, 2051, (5, 28, 28), small_images.tobytes())
    with pytest.raises(DataError, match="checksum does not match"):
        read_idx(path, IdxFile("images", 2051, 5, "0" * 64))


def test_labels_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    digest = write_idx(path, 2049, (2,), bytes([1, 12]))
    with pytest.raises(DataError, match="labels above 9"):
        read_idx(path, IdxFile("labels", 2049, 2, digest))


def test_missing_file_in_chosen_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: missing.*FMNIST_DATA_DIR"):
        data.load_dataset(allow_download=False)


def test_a_local_copy_is_told_apart_from_none(
    dataset: data.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert data.has_local_copy()
    monkeypatch.delenv("FMNIST_DATA_DIR", raising=False)
    empty = [("nowhere", tmp_path)]
    monkeypatch.setattr(data, "candidate_sources", lambda: empty)
    # Nothing here: only Keras's downloader is left, which the web server's start-up skips.
    assert not data.has_local_copy()
    with pytest.raises(DataError, match="not found"):
        data.load_dataset(allow_download=False)


def test_real_dataset(dataset: data.Dataset) -> None:
    # load_dataset verified magic, counts, shapes and the checksum of every file.
    assert dataset.x_train.shape == (60_000, 28, 28)
    assert dataset.x_test.shape == (10_000, 28, 28)
    assert dataset.x_train.dtype == np.uint8
    np.testing.assert_array_equal(data.class_counts(dataset.y_train), [6_000] * 10)
    np.testing.assert_array_equal(data.class_counts(dataset.y_test), [1_000] * 10)
    assert 54e6 < dataset.nbytes < 56e6  # kept as uint8: about 55 MB
    assert dataset.x_train.max() == 255 and dataset.x_train.min() == 0
    assert len(data.CLASS_NAMES) == 10 and data.CLASS_NAMES[9] == "Ankle boot"


def test_env_folder_comes_first_and_is_verified(
    dataset: data.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for expected in data.IDX_FILES.values():
        source = next(dataset.path.glob(expected.name + "*"))
        os.symlink(source, tmp_path / source.name)
    monkeypatch.setenv("FMNIST_DATA_DIR", str(tmp_path))
    loaded = data.load_dataset(allow_download=False)
    assert loaded.source == "FMNIST_DATA_DIR" and loaded.path == tmp_path
    np.testing.assert_array_equal(loaded.y_test, dataset.y_test)

    # A damaged copy in that folder is reported, not silently replaced by another source.
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    labels.unlink()
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: checksum does not match"):
        data.load_dataset(allow_download=False)


def test_a_gzipped_file_is_read_next_time_from_its_decompressed_copy(
    tmp_path: Path, small_images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setattr(data.config, "CACHE_DIR", cache)
    path = tmp_path / "images.gz"
    expected = IdxFile(
        "images", 2051, 5, write_idx(path, 2051, (5, 28, 28), small_images.tobytes())
    )
    np.testing.assert_array_equal(read_idx(path, expected), small_images)
    (copy,) = cache.iterdir()  # written whole: no temporary file is left beside it
    assert copy.name.startswith("images-") and copy.stat().st_size == 16 + small_images.size

    # The next read does not decompress: it reads the copy.
    def no_gzip(raw: bytes) -> bytes:
        raise AssertionError("decompressed again")

    monkeypatch.setattr(data.gzip, "decompress", no_gzip)
    np.testing.assert_array_equal(read_idx(path, expected), small_images)
    monkeypatch.undo()
    monkeypatch.setattr(data.config, "CACHE_DIR", cache)

    # A damaged copy is checked like the file itself, set aside and written again.
    damaged = bytearray(copy.read_bytes())
    damaged[-1] ^= 0xFF
    copy.write_bytes(bytes(damaged))
    np.testing.assert_array_equal(read_idx(path, expected), small_images)
    assert [p.read_bytes()[16:] for p in cache.iterdir()] == [small_images.tobytes()]

    # A new file at the same path gets its own copy; the old file's copy goes.
    other = np.flip(small_images, axis=0).copy()
    os.utime(path, ns=(0, 0))  # another time of change, whatever the clock's resolution
    expected = IdxFile("images", 2051, 5, write_idx(path, 2051, (5, 28, 28), other.tobytes()))
    os.utime(path, ns=(10**9, 10**9))
    np.testing.assert_array_equal(read_idx(path, expected), other)
    (newer,) = cache.iterdir()
    assert newer != copy and newer.read_bytes()[16:] == other.tobytes()


def test_a_cache_folder_that_cannot_be_written_only_costs_speed(
    tmp_path: Path, small_images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    monkeypatch.setattr(data.config, "CACHE_DIR", blocked / "cache")
    path = tmp_path / "images.gz"
    expected = IdxFile(
        "images", 2051, 5, write_idx(path, 2051, (5, 28, 28), small_images.tobytes())
    )
    np.testing.assert_array_equal(read_idx(path, expected), small_images)
    np.testing.assert_array_equal(read_idx(path, expected), small_images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file, not a folder", "images.gz"]


def test_two_folders_keep_their_own_copies_and_a_failed_write_leaves_nothing(
    tmp_path: Path, small_images: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setattr(data.config, "CACHE_DIR", cache)
    expected = None
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "images.gz"
        expected = IdxFile(
            "images", 2051, 5, write_idx(path, 2051, (5, 28, 28), small_images.tobytes())
        )
        read_idx(path, expected)
    assert len(list(cache.iterdir())) == 2  # neither evicts the other's copy
    assert all(copy.stat().st_mode & 0o777 == 0o644 for copy in cache.iterdir())

    def full_disk(source: object, destination: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.os, "replace", full_disk)
    path = tmp_path / "c.gz"
    assert expected is not None
    write_idx(path, 2051, (5, 28, 28), small_images.tobytes())
    np.testing.assert_array_equal(read_idx(path, expected), small_images)
    assert len(list(cache.iterdir())) == 2  # no half-written file left behind
