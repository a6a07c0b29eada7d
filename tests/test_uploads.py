"""A session's kept pictures: keyed by content, labels kept per picture, guesses not counted."""

from __future__ import annotations

import pytest

from fmnist import uploads
from fmnist.imaging import PreparedImage
from fmnist.uploads import CONFIRMED, GUESSED, USER


def keep(store: uploads.Store, name: str, payload: bytes) -> str:
    """Keep a picture as the page does; its digest."""
    digest = uploads.digest_of(payload)
    assert uploads.add(store, name, digest, PreparedImage(file=name))
    return digest


def test_pictures_are_kept_once_per_content_whatever_their_name() -> None:
    store: uploads.Store = {}
    first = keep(store, "IMG_1.jpg", b"one")
    assert first == uploads.digest_of(b"one") and len(first) == 64
    uploads.set_label(store, first, 4)
    # The same bytes again, under another name: nothing changes.
    assert keep(store, "coat.jpg", b"one") == first
    assert len(store) == 1 and store[first].name == "IMG_1.jpg" and store[first].label == 4


def test_removing_one_picture_keeps_the_others_and_their_labels() -> None:
    store: uploads.Store = {}
    digests = [keep(store, f"IMG_{i}.jpg", bytes([i])) for i in range(3)]
    for label, digest in enumerate(digests):
        uploads.set_label(store, digest, label + 5)
    uploads.remove(store, digests[1])
    assert list(store) == [digests[0], digests[2]]
    assert [store[d].label for d in store] == [5, 7]
    assert uploads.counted_labels(store) == {digests[0]: 5, digests[2]: 7}
    uploads.remove(store, digests[1])  # twice: no error


def test_a_class_guessed_from_the_file_name_counts_only_once_confirmed() -> None:
    store: uploads.Store = {}
    boot = keep(store, "boot_on_blue.jpg", b"boot")
    assert store[boot].label == 9 and store[boot].label_source == GUESSED
    assert store[boot].guessed and not store[boot].counted
    assert uploads.counted_labels(store) == {}
    uploads.confirm(store, boot)
    assert store[boot].label_source == CONFIRMED and store[boot].counted
    assert uploads.counted_labels(store) == {boot: 9}


def test_a_guess_can_be_cleared_or_replaced_by_the_users_choice() -> None:
    store: uploads.Store = {}
    cleared = keep(store, "sneaker.png", b"a")
    chosen = keep(store, "bag.png", b"b")
    uploads.set_label(store, cleared, None)
    assert store[cleared].label is None and store[cleared].label_source is None
    uploads.confirm(store, cleared)  # nothing left to confirm
    assert not store[cleared].counted
    uploads.set_label(store, chosen, 3)
    assert store[chosen].label == 3 and store[chosen].label_source == USER
    assert uploads.counted_labels(store) == {chosen: 3}


def test_no_guess_without_a_class_word() -> None:
    store: uploads.Store = {}
    digest = keep(store, "IMG_1234.HEIC", b"x")
    assert store[digest].label is None and not store[digest].guessed


def test_the_store_has_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "MAX_PICTURES", 2)
    store: uploads.Store = {}
    keep(store, "a.png", b"a")
    keep(store, "b.png", b"b")
    assert not uploads.add(store, "c.png", uploads.digest_of(b"c"), PreparedImage(file="c"))
    assert keep(store, "a again.png", b"a")  # already kept
    assert len(store) == 2


def test_camera_photos_are_numbered() -> None:
    store: uploads.Store = {}
    assert uploads.camera_name(store) == "camera photo 1.jpg"
    first = keep(store, uploads.camera_name(store), b"1")
    keep(store, uploads.camera_name(store), b"2")
    assert [p.name for p in store.values()] == ["camera photo 1.jpg", "camera photo 2.jpg"]
    uploads.remove(store, first)
    assert uploads.camera_name(store) == "camera photo 3.jpg"
    assert store[keep(store, "camera photo 3.jpg", b"3")].label is None
