"""A user's text file: the one-line :class:`DataError` of every reader, the size check, reading the bytes and decoding
them (UTF-8, a byte-order mark allowed, no NUL bytes), and text from the file quoted for a message.

>>> str(DataError("lat 95 is outside [-90, 90]", source="v.csv", line=5))
'v.csv, line 5: lat 95 is outside [-90, 90]'
>>> try:
...     decode(b"lat\\r\\n\\x00", "f.csv")
... except DataError as err:
...     err.line
2
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DataError", "check_size", "decode", "read_file", "shown"]


class DataError(ValueError):
    """A user-facing problem with input data.

    ``str(err)`` is one line naming the source, the line (when there is one) and the problem,
    e.g. ``"volcano.csv, line 5: lat 95.0 is outside [-90, 90]"`` or
    ``"empty.csv: the file is empty"``. The parts are kept as ``.problem``, ``.source`` and
    ``.line`` (1-based, or ``None`` for a problem with the whole file).
    """

    def __init__(self, problem: str, *, source: str, line: int | None = None) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        where = source if line is None else f"{source}, line {line}"
        super().__init__(" ".join(f"{where}: {problem}".splitlines()))


def shown(raw: str, limit: int = 40) -> str:
    """Text from a file for a message: at most ``limit`` characters, quoted and escaped."""
    return repr(raw if len(raw) <= limit else raw[: limit - 3] + "...")


def check_size(size: int, max_bytes: int, source: str) -> None:
    if size > max_bytes:
        mb = 1024 * 1024
        raise DataError(f"the file is {size / mb:.1f} MB, larger than the limit of {max_bytes / mb:.1f} MB",
                        source=source)


def read_file(path: str | os.PathLike[str], max_bytes: int) -> tuple[bytes, str]:
    """The bytes of a file (at most ``max_bytes + 1``) and its name as a source; a missing, unreadable or
    too large file (its size checked before reading it) or a directory is a :class:`DataError`."""
    p = Path(path)
    source = p.name or str(p)
    try:
        info = p.stat()
    except FileNotFoundError:
        raise DataError(f"file not found: {str(p)!r}", source=source) from None
    except OSError as err:
        raise DataError(f"cannot open the file: {err.strerror or err}", source=source) from None
    if p.is_dir():
        raise DataError("is a directory, not a file", source=source)
    check_size(info.st_size, max_bytes, source)
    try:
        with p.open("rb") as f:
            return f.read(max_bytes + 1), source
    except OSError as err:
        raise DataError(f"cannot read the file: {err.strerror or err}", source=source) from None


def decode(data: str | bytes, source: str) -> str:
    """UTF-8 text without a byte-order mark; NUL characters mean a binary file."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = _line_of(data, err.start)
            raise DataError(f"not UTF-8 text (byte 0x{data[err.start]:02x}); is it a binary file? Save it as CSV "
                            "(UTF-8)", source=source, line=line) from None
    else:
        text = data.removeprefix("\ufeff")
    if "\x00" in text:
        line = _line_of(text, text.index("\x00"))
        raise DataError("not UTF-8 text (contains NUL bytes); is it a binary file? Save it as CSV (UTF-8)",
                        source=source, line=line)
    return text


def _line_of(data: str | bytes, at: int) -> int:
    """The line of offset ``at``: 1 + the line breaks (LF, CRLF or CR) before it."""
    lf, cr, crlf = ("\n", "\r", "\r\n") if isinstance(data, str) else (b"\n", b"\r", b"\r\n")
    return data.count(lf, 0, at) + data.count(cr, 0, at) - data.count(crlf, 0, at) + 1
