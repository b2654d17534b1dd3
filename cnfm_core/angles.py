"""Reading and writing points on the torus Tᵈ: CSV files whose every column is an angle in degrees.

A file has a header line naming its ``d`` columns (any names, e.g. ``phi,psi`` for protein backbone
angles) and one point per row, every field a number of degrees. Values are wrapped to ``[-180, 180)``
(so 180 reads as -180 and 350 as -10). The delimiter is ``,``, ``;`` or a tab, whichever occurs most in
the header line; blank lines are skipped; a UTF-8 byte-order mark is accepted. Every problem is a
:class:`cnfm_core.data.DataError` (as for lat/lon files) whose one-line message names the source, the line
and the problem, e.g. ``"f.csv, line 5: column 'psi': 'abc' is not a number"``. Torch-free:
pages and tools read angle files with numpy only.

>>> pts = parse_angles("phi,psi\\n-60.5,-45\\n180,350\\n")
>>> pts.names, pts.n, pts.dim, pts.lines.tolist()
(('phi', 'psi'), 2, 2, [2, 3])
>>> pts.degrees.tolist()
[[-60.5, -45.0], [-180.0, -10.0]]
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .textfile import DataError, check_size, read_file, shown

__all__ = ["ANGLE_MAX_BYTES", "AngleSet", "DataError", "parse_angles", "read_angles", "wrap_degrees",
           "write_angles"]

#: Largest input accepted by default: 50 MiB (as for lat/lon files).
ANGLE_MAX_BYTES: int = 50 * 1024 * 1024
_MIN_POINTS: int = 2
_DELIMITERS: tuple[str, ...] = (",", ";", "\t")


@dataclass(frozen=True, eq=False)
class AngleSet:
    """Points on Tᵈ: ``degrees`` ``(n, d)`` float64 in ``[-180, 180)``, column ``names``, and ``lines[i]``, the
    1-based line of point ``i`` in its ``source`` (the header is line 1, blank lines count)."""

    names: tuple[str, ...]
    degrees: np.ndarray
    lines: np.ndarray
    source: str

    @property
    def n(self) -> int:
        return int(self.degrees.shape[0])

    @property
    def dim(self) -> int:
        return int(self.degrees.shape[1])

    @property
    def radians(self) -> np.ndarray:
        """The angles in radians, in ``[-π, π)`` (180 degrees is π only to rounding, so this is rewrapped)."""
        r = np.deg2rad(self.degrees)
        return np.where(r >= math.pi, r - 2.0 * math.pi, r)


def wrap_degrees(a: np.ndarray) -> np.ndarray:
    """Angles in degrees wrapped into ``[-180, 180)``; those already in range are returned unchanged."""
    a = np.asarray(a, dtype=np.float64)
    w = np.mod(a + 180.0, 360.0) - 180.0
    w = np.where(w >= 180.0, w - 360.0, w)
    return np.where((a >= -180.0) & (a < 180.0), a, w)


def read_angles(path: str | os.PathLike[str], *, max_bytes: int = ANGLE_MAX_BYTES) -> AngleSet:
    """Read an angle CSV file (module doc); a missing, unreadable or too large file is a :class:`DataError`."""
    data, source = read_file(path, max_bytes)
    return parse_angles(data, source=source, max_bytes=max_bytes)


def parse_angles(data: str | bytes, *, source: str = "upload", max_bytes: int = ANGLE_MAX_BYTES) -> AngleSet:
    """Parse CSV text (or UTF-8 bytes) of angles in degrees (module doc) into an :class:`AngleSet`.

    The first problem found is raised: over ``max_bytes``, not UTF-8 text, empty, a header that looks
    like data or has an unnamed column, a row with more or fewer fields than the header, an empty,
    non-numeric or non-finite value, no data rows, or fewer than 2 points.
    """
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    check_size(size, max_bytes, source)
    text = _decode(data, source)
    if not text.strip():
        raise DataError("the file is empty", source=source)
    rows = _rows(text, source)
    header_line, header = next(rows)
    names = tuple(h.strip() for h in header)
    if all(_is_number(n) for n in names):
        raise DataError("the first line looks like data; add a header line naming the columns, such as "
                             "'phi,psi'", source=source, line=header_line)
    for i, name in enumerate(names):
        if not name:
            raise DataError(f"column {i + 1} has no name in the header", source=source, line=header_line)
    values: list[list[float]] = []
    lines: list[int] = []
    for line, row in rows:
        if len(row) != len(names):
            raise DataError(f"{len(row)} fields, but the header names {len(names)} columns", source=source,
                                 line=line)
        values.append([_number(raw, name, source, line) for raw, name in zip(row, names, strict=True)])
        lines.append(line)
    if not values:
        raise DataError("the file has a header but no data rows", source=source)
    if len(values) < _MIN_POINTS:
        raise DataError(f"only {len(values)} data point; at least {_MIN_POINTS} are needed", source=source)
    degrees = wrap_degrees(np.asarray(values, dtype=np.float64))
    degrees.flags.writeable = False
    return AngleSet(names, degrees, np.asarray(lines, dtype=np.int64), source)


def write_angles(path: str | os.PathLike[str], names: tuple[str, ...] | list[str], radians: np.ndarray, *,
                 decimals: int = 6) -> None:
    """Write points given in radians ``(n, d)`` as a CSV of degrees in ``[-180, 180)`` under the header ``names``
    (``decimals`` places); :func:`read_angles` reads it back."""
    r = np.asarray(radians, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != len(names):
        raise ValueError(f"need one column per name ({len(names)}), got shape {r.shape}")
    deg = np.round(wrap_degrees(np.rad2deg(r)), decimals)
    deg = np.where(deg >= 180.0, deg - 360.0, deg) + 0.0  # rounding can reach 180; + 0.0 turns -0 into 0
    header = ",".join(_quoted(n) for n in names)
    np.savetxt(path, deg, fmt=f"%.{decimals}f", delimiter=",", header=header, comments="")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"' if any(c in name for c in ',;\t"\n') else name


def _decode(data: str | bytes, source: str) -> str:
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise DataError(f"not UTF-8 text (byte 0x{data[err.start]:02x}); save it as CSV (UTF-8)",
                                 source=source, line=data.count(b"\n", 0, err.start) + 1) from None
    else:
        text = data.removeprefix("\ufeff")
    if "\x00" in text:
        raise DataError("not UTF-8 text (contains NUL bytes); save it as CSV (UTF-8)", source=source,
                             line=text.count("\n", 0, text.index("\x00")) + 1)
    return text


# The row reader of angle files, on the csv module


def _rows(text: str, source: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV records with the 1-based line on which each starts."""
    first = next((ln for ln in io.StringIO(text, newline="") if ln.strip()), "")
    delimiter = max(_DELIMITERS, key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataError(f"malformed CSV: {err}", source=source, line=start) from None
        line, start = start, reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield line, row


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return "_" not in s


def _number(raw: str, column: str, source: str, line: int) -> float:
    s = raw.strip()
    if not s:
        raise DataError(f"column {column!r} is empty", source=source, line=line)
    if not _is_number(s):
        raise DataError(f"column {column!r}: {shown(s)} is not a number", source=source, line=line)
    v = float(s)
    if not math.isfinite(v):
        raise DataError(f"column {column!r}: {s!r} is not finite (NaN or infinity)", source=source, line=line)
    return v
