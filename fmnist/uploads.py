"""A session's own pictures: kept by content, each with the class its owner gave it.

The Predict page keeps every picture added through the uploader or the camera
in the browser session (``st.session_state``), keyed by the SHA-256 of its
bytes, so that switching models, leaving the page or removing another picture
loses nothing. The uploader only adds; each kept picture has its own remove.

A true class comes from one of three places, recorded in ``label_source``:

- ``"user"``: chosen by the user in the picture's "True class" box;
- ``"guessed"``: read from the file name ("boot_on_blue.jpg" -> Ankle boot),
  shown as a guess to confirm, and *not* counted in the accuracy until then;
- ``"confirmed"``: a guess the user confirmed.

Plain data (no Streamlit): the store is a dict ``digest -> Picture`` that the
page keeps in its session. A picture keeps what was made of it (the 28x28 input
and a small thumbnail, ~200 KB), not its file (up to 20 MB).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fmnist.imaging import PreparedImage, label_from_filename

USER, GUESSED, CONFIRMED = "user", "guessed", "confirmed"
# A session keeps at most this many pictures.
MAX_PICTURES = 30


@dataclass
class Picture:
    name: str
    prepared: PreparedImage  # the 28x28 input and the thumbnail shown
    label: int | None = None
    label_source: str | None = None  # USER, GUESSED, CONFIRMED, or None without a label

    @property
    def counted(self) -> bool:
        """Whether the label is the user's word (chosen, or a guess they confirmed)."""
        return self.label is not None and self.label_source in (USER, CONFIRMED)

    @property
    def guessed(self) -> bool:
        return self.label is not None and self.label_source == GUESSED


Store = dict[str, Picture]


def digest_of(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def add(store: Store, name: str, digest: str, prepared: PreparedImage) -> bool:
    """Keep a picture (once per content: ``digest``); False when the store is full.

    A picture already kept keeps its name and label: uploading the same file
    again, under any name, changes nothing.
    """
    if digest in store:
        return True
    if len(store) >= MAX_PICTURES:
        return False
    guess = label_from_filename(name)
    store[digest] = Picture(name, prepared, guess, GUESSED if guess is not None else None)
    return True


def remove(store: Store, digest: str) -> None:
    store.pop(digest, None)


def set_label(store: Store, digest: str, label: int | None) -> None:
    """The user's own choice (None clears it)."""
    picture = store.get(digest)
    if picture is not None:
        picture.label = label
        picture.label_source = USER if label is not None else None


def confirm(store: Store, digest: str) -> None:
    """The user agrees with the class guessed from the file name."""
    picture = store.get(digest)
    if picture is not None and picture.guessed:
        picture.label_source = CONFIRMED


def counted_labels(store: Store) -> dict[str, int]:
    """digest -> label for the pictures whose label counts in the own-set accuracy."""
    return {d: p.label for d, p in store.items() if p.counted and p.label is not None}


def camera_name(store: Store) -> str:
    """A name for the next camera photo: 'camera photo 1.jpg', 'camera photo 2.jpg', ..."""
    numbers = [
        int(p.name[13:-4])
        for p in store.values()
        if p.name.startswith("camera photo ") and p.name[13:-4].isdigit()
    ]
    return f"camera photo {max(numbers, default=0) + 1}.jpg"
