"""Is a .keras file safe to open? Its zip directory says so, without TensorFlow.

A .keras file is a zip archive. Its size says little about what it becomes:
a 1.6 MB file whose weights expand to 1.5 GiB took the server from 1.3 GB to
4.4 GB, and Keras's own guard (4 GiB per member) lets that through. This
module reads only the archive's central directory (no member is decompressed)
and refuses, in one line, a file that

- is not a zip archive, or holds more entries than a .keras file could;
- holds a member that Keras 3 does not write (it writes ``metadata.json``,
  ``config.json`` and ``model.weights.h5``, or ``.npz`` weights);
- would expand a member more than ``MAX_RATIO`` times (Keras stores its
  members uncompressed, ratio 1: the shipped model's are 1.0);
- would take more than ``MAX_UNPACKED_MB`` once unpacked, or JSON members
  larger than ``MAX_JSON_BYTES``.

Keras reads members through ``zipfile``, which never yields more bytes than
the sizes the directory declares, so these declared sizes bound what loading
can unpack. The web server checks an upload before sending it to the
inference service, and the service, the command line and ``fmnist.runs``
check again before Keras sees the file.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from fmnist import config

# What Keras 3 writes into a .keras file (keras/src/saving/saving_lib.py).
KERAS_MEMBERS = frozenset({"metadata.json", "config.json", "model.weights.h5", "model.weights.npz"})
JSON_MEMBERS = frozenset({"metadata.json", "config.json"})
MAX_ENTRIES = 8
MAX_UNPACKED_MB = 200
MAX_UNPACKED_BYTES = MAX_UNPACKED_MB * 1024 * 1024
# A real config.json is tens of kilobytes (13.7 KB for the shipped cnn-bn).
MAX_JSON_BYTES = 16 * 1024 * 1024
# Members under this size may compress as well as they like (JSON does, 5-20 times).
RATIO_FLOOR_BYTES = 1024 * 1024
MAX_RATIO = 100


class ArchiveError(ValueError):
    """The file is not a .keras file that is safe to load. The message is one line."""


def check(source: bytes | Path | str) -> None:
    """Raise ArchiveError if ``source`` (the file's bytes, or its path) should not be loaded."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        size = len(data)
        head = data[:4]
        opened = io.BytesIO(data)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
            opened = path.open("rb")
        except OSError as error:
            raise ArchiveError(f"cannot read the model file ({error.strerror})") from None
        head = opened.read(4)
    with opened:
        _check(opened, size, head)


def _check(file: io.IOBase, size: int, head: bytes) -> None:
    if size > config.MAX_MODEL_BYTES:
        raise ArchiveError(
            f"model file too large: {size / 1e6:.0f} MB, the limit is {config.MAX_MODEL_MB} MB"
        )
    if head != b"PK\x03\x04":
        raise ArchiveError("not a .keras file (a .keras file is a zip archive saved by Keras 3)")
    # The directory's own count first: ZipFile would build an object per entry,
    # and a 100 MB directory of empty entries is two million of them.
    entries = _declared_entries(file)
    if entries > MAX_ENTRIES:
        raise ArchiveError(
            f"not a .keras file: its archive holds {entries:,} entries, Keras writes 3"
        )
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise ArchiveError("not a .keras file: its zip archive is damaged") from None
    names = [member.filename for member in members]
    for name in names:
        if name not in KERAS_MEMBERS:
            raise ArchiveError(
                f"not a .keras file: unexpected member {_short(name)} in its archive "
                "(Keras writes metadata.json, config.json and model.weights.h5)"
            )
    if len(set(names)) != len(names):
        raise ArchiveError("not a .keras file: a member appears twice in its archive")
    if "config.json" not in names:
        raise ArchiveError("not a .keras file: its archive has no config.json")
    for member in members:
        unpacked, stored = member.file_size, member.compress_size
        if unpacked > RATIO_FLOOR_BYTES and unpacked > MAX_RATIO * max(stored, 1):
            raise ArchiveError(
                f"refused as a zip bomb: {member.filename} would expand "
                f"{unpacked / max(stored, 1):,.0f} times, "
                f"from {_megabytes(stored)} to {_megabytes(unpacked)}"
            )
        if member.filename in JSON_MEMBERS and unpacked > MAX_JSON_BYTES:
            raise ArchiveError(
                f"refused: {member.filename} would take {_megabytes(unpacked)}, "
                f"the limit is {MAX_JSON_BYTES // 2**20} MB"
            )
    total = sum(member.file_size for member in members)
    if total > MAX_UNPACKED_BYTES:
        raise ArchiveError(
            f"refused: the model would take {_megabytes(total)} once unpacked, "
            f"the limit is {MAX_UNPACKED_MB} MB"
        )


def _declared_entries(file: io.IOBase) -> int:
    """The entry count of the end-of-directory record, read the way ``zipfile`` reads it."""
    try:
        # zipfile's own reader of the end record (a private name, there since Python 2),
        # so that this count and the directory ZipFile then reads are the same.
        record = zipfile._EndRecData(file)  # type: ignore[attr-defined]
    except (OSError, ValueError, EOFError):
        record = None
    if not record:
        raise ArchiveError("not a .keras file: its zip archive is damaged")
    return int(record[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]


def _megabytes(count: int) -> str:
    if count >= 1e9:
        return f"{count / 1e9:.1f} GB"
    if count >= 1e6:
        return f"{count / 1e6:.1f} MB"
    return f"{count / 1e3:.1f} KB"


def _short(name: str, limit: int = 40) -> str:
    """A member's name as a quoted Python literal, cut short: one line, no control characters."""
    return repr(name if len(name) <= limit else name[:limit] + "…")
