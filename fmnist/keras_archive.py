"""Is a .keras file safe to open? Its zip directory says so, without TensorFlow.

A .keras file is a zip archive. Its size says little about what it becomes:
a 1.6 MB file whose weights expand to 1.5 GiB took the server from 1.3 GB to
4.4 GB, and Keras's own guard (4 GiB per member) lets that through. This
module reads only the archive's central directory (no member is decompressed)
and refuses, in one line, a file that

- is not a zip archive, or holds more entries than a .keras file could (by
  the count its end record declares, and by the size of its directory, which
  is what ``zipfile`` reads: a directory of a million entries whose end record
  says 3 is refused before any entry is parsed);
- holds a member that Keras 3 does not write (it writes ``metadata.json``,
  ``config.json`` and ``model.weights.h5``; not ``.npz`` weights, a zip of
  their own that numpy would unpack by the shapes it declares);
- would expand a member more than ``MAX_RATIO`` times (Keras stores its
  members uncompressed, ratio 1: the shipped model's are 1.0);
- would take more than ``MAX_UNPACKED_MB`` once unpacked, or JSON members
  larger than ``MAX_JSON_BYTES``.

Keras reads members through ``zipfile``, which never yields more bytes than
the sizes the directory declares, so these sizes bound the zip's own members.
HDF5 may compress datasets inside ``model.weights.h5``: the inference
service's address-space cap is the guard there (none with a GPU). The web
server checks an upload before sending it to the inference service, and the
service, the command line and ``fmnist.runs`` check again before Keras sees
the file.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from fmnist import config
from fmnist.messages import short

# What Keras 3 writes into a .keras file (keras/src/saving/saving_lib.py).
KERAS_MEMBERS = frozenset({"metadata.json", "config.json", "model.weights.h5"})
JSON_MEMBERS = frozenset({"metadata.json", "config.json"})
MAX_ENTRIES = 8
# zipfile reads the central directory by the size the end record declares, not by
# its count: a .keras file's directory is a few hundred bytes. An entry there is
# 46 bytes, then its name (Keras's are short) and extra fields (ZIP64's, timestamps).
MAX_DIRECTORY_BYTES = MAX_ENTRIES * (46 + 256 + 64)
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
        opened: io.BufferedIOBase = io.BytesIO(data)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
            opened = path.open("rb")
        except OSError as error:
            raise ArchiveError(f"cannot read the model file ({error.strerror})") from None
    with opened:
        try:
            head = opened.read(4)
        except OSError as error:
            raise ArchiveError(f"cannot read the model file ({error.strerror})") from None
        _check(opened, size, head)


def _check(file: io.IOBase, size: int, head: bytes) -> None:
    if size > config.MAX_MODEL_BYTES:
        raise ArchiveError(
            f"model file too large: {size / 1e6:.0f} MB, the limit is {config.MAX_MODEL_MB} MB"
        )
    if head != b"PK\x03\x04":
        raise ArchiveError("not a .keras file (a .keras file is a zip archive saved by Keras 3)")
    # The end record first: ZipFile would build an object per entry, and a 100 MB
    # directory of empty entries is two million of them. It parses entries until
    # it has read the directory's declared size, whatever the declared count.
    entries, directory_bytes = _declared_directory(file)
    if entries > MAX_ENTRIES:
        raise ArchiveError(
            f"not a .keras file: its archive holds {entries:,} entries, Keras writes 3"
        )
    if directory_bytes > MAX_DIRECTORY_BYTES:
        raise ArchiveError(
            f"not a .keras file: its zip directory takes {_megabytes(directory_bytes)}, "
            f"the limit is {_megabytes(MAX_DIRECTORY_BYTES)} (Keras writes 3 entries)"
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
                f"not a .keras file: unexpected member {short(name)} in its archive "
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


def _declared_directory(file: io.IOBase) -> tuple[int, int]:
    """Entry count and directory size of the end record, read the way ``zipfile`` reads them.

    ``zipfile._EndRecData`` takes them from the ZIP64 end record when the archive has one.
    """
    try:
        # zipfile's own reader of the end record (a private name, there since Python 2),
        # so that this count and the directory ZipFile then reads are the same.
        record = zipfile._EndRecData(file)  # type: ignore[attr-defined]
    except (OSError, ValueError, EOFError):
        record = None
    if not record:
        raise ArchiveError("not a .keras file: its zip archive is damaged")
    entries = int(record[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]
    return entries, int(record[zipfile._ECD_SIZE])  # type: ignore[attr-defined]


def _megabytes(count: int) -> str:
    if count >= 1e9:
        return f"{count / 1e9:.1f} GB"
    if count >= 1e6:
        return f"{count / 1e6:.1f} MB"
    return f"{count / 1e3:.1f} KB"
