"""Reading point sets on the sphere from CSV files.

A CSV file holds one point per row, found by header name (case-insensitive, surrounding
whitespace ignored):

* latitude and longitude in degrees, **(lat, lon)**: a ``lat``/``latitude`` column and a
  ``lon``/``lng``/``long``/``longitude`` column; or
* Cartesian coordinates: ``x``, ``y``, ``z`` columns (normalised to unit length).

If both are present, lat/lon wins. Other columns are ignored. The delimiter is ``,``, ``;`` or
a tab, whichever occurs most in the header line. Every problem with the input is a
:class:`DataError` whose one-line message names the source, the line and the problem.

This module is torch-free (pages read data through it). The train/val/test splits live in
:mod:`cnfm_core.splits`, which draws its permutation with torch.

>>> pts = parse_points("Latitude,Longitude\\n-30.2,-178.47\\n10,200\\n")
>>> pts.n, pts.lines.tolist()
(2, [2, 3])
>>> [round(v, 6) for v in pts.lon.tolist()]
[-178.47, -160.0]
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnfm_core.geo import latlon_to_xyz, xyz_to_latlon

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DataError",
    "LAT_NAMES",
    "LON_NAMES",
    "PointSet",
    "csv_columns",
    "parse_points",
    "read_points",
    "unique_rows",
    "write_points",
]

#: Largest input accepted by default: 50 MiB.
DEFAULT_MAX_BYTES: int = 50 * 1024 * 1024

#: Header names (lower case) of a latitude and of a longitude column, in degrees; the one list of aliases.
LAT_NAMES: tuple[str, ...] = ("lat", "latitude")
LON_NAMES: tuple[str, ...] = ("lon", "lng", "long", "longitude")
_XYZ_NAMES: tuple[str, ...] = ("x", "y", "z")
_ACCEPTED: str = "lat/latitude with lon/lng/long/longitude (degrees), or x, y, z (case-insensitive)"
_DELIMITERS: tuple[str, ...] = (",", ";", "\t")
#: Cartesian rows shorter than this cannot be normalised.
_MIN_NORM: float = 1e-9
_MIN_POINTS: int = 2


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


@dataclass(frozen=True, eq=False)
class PointSet:
    """Points on the unit sphere read from one source.

    ``xyz`` is ``(n, 3)`` float64 unit vectors; ``lines[i]`` is the 1-based line in the file where
    point ``i`` starts (the header is line 1, blank lines count); ``source`` is the file name or
    ``"upload"``. Both arrays are stored as read-only copies. Equality is identity.
    """

    xyz: np.ndarray
    lines: np.ndarray
    source: str

    def __post_init__(self) -> None:
        xyz = np.array(self.xyz, dtype=np.float64)
        lines = np.array(self.lines, dtype=np.int64)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise ValueError(f"xyz must have shape (n, 3), got {xyz.shape}")
        if lines.shape != (xyz.shape[0],):
            raise ValueError(f"lines must have shape ({xyz.shape[0]},), got {lines.shape}")
        xyz.flags.writeable = False
        lines.flags.writeable = False
        object.__setattr__(self, "xyz", xyz)
        object.__setattr__(self, "lines", lines)

    @property
    def n(self) -> int:
        """Number of points."""
        return int(self.xyz.shape[0])

    @property
    def lat(self) -> np.ndarray:
        """Latitude in degrees, in [-90, 90]."""
        return xyz_to_latlon(self.xyz)[0]

    @property
    def lon(self) -> np.ndarray:
        """Longitude in degrees, in (-180, 180]."""
        return xyz_to_latlon(self.xyz)[1]

    def subset(self, idx: np.ndarray) -> PointSet:
        """The points ``idx`` (integer indices or a boolean mask), with their line numbers."""
        idx = np.asarray(idx)
        return PointSet(xyz=self.xyz[idx], lines=self.lines[idx], source=self.source)


# ---------------------------------------------------------------------------------------------
# Reading


def read_points(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> PointSet:
    """Read a CSV file of points; see :func:`parse_points` for the format.

    Raises :class:`DataError` (with the file name as source) if the file is missing, is a
    directory, cannot be read, is larger than ``max_bytes`` (checked before reading it), or
    holds bad data.
    """
    data, source = _read_file(path, max_bytes)
    return parse_points(data, source=source, max_bytes=max_bytes)


def parse_points(
    data: str | bytes,
    *,
    source: str = "upload",
    lat_col: str | None = None,
    lon_col: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> PointSet:
    """Parse CSV text (or UTF-8 bytes) into a :class:`PointSet`.

    Columns are detected from the header (see the module docstring); ``lat_col``/``lon_col``
    name the columns to use instead (case-insensitive). Accepted: a UTF-8 byte-order mark, LF,
    CRLF or CR line endings, blank lines (skipped), ``,`` ``;`` or tab delimiters, quoted
    fields. Longitudes in [180, 360) are wrapped to (-180, 180].

    Raises :class:`DataError` for the first problem found: input over ``max_bytes``, not UTF-8
    text, empty, no recognised header, a named column missing, a row with too few fields, an
    empty / non-numeric / non-finite value, lat outside [-90, 90], lon outside [-180, 360),
    x, y, z of (near-)zero length (norm below 1e-9), no data rows, or fewer than 2 points.
    """
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    _check_size(size, max_bytes, source)
    text = _decode(data, source)
    if not text.strip():
        raise DataError("the file is empty", source=source)

    rows = _rows(text, source)
    header_line, header = next(rows, (0, []))
    names = [h.strip() for h in header]
    if lat_col is not None or lon_col is not None:
        cols = _pick_latlon(names, lat_col, lon_col, source, header_line)
    else:
        cols = _detect(names, source, header_line)
    latlon = len(cols) == 2

    values: list[list[float]] = []
    lines: list[int] = []
    for line, row in rows:
        if len(row) <= max(cols):
            raise DataError(
                f"too few fields: found {len(row)}, need column {names[max(cols)]!r} (field {max(cols) + 1})",
                source=source,
                line=line,
            )
        vals = [_number(row[c], names[c], source, line) for c in cols]
        if latlon:
            vals[1] = _check_latlon(vals[0], vals[1], source, line)
        elif math.hypot(*vals) < _MIN_NORM:
            raise DataError(
                f"x, y, z = {vals[0]:g}, {vals[1]:g}, {vals[2]:g} has (near-)zero length, "
                "so it is not a direction on the sphere",
                source=source,
                line=line,
            )
        values.append(vals)
        lines.append(line)

    if not values:
        raise DataError("the file has a header but no data rows", source=source)
    if len(values) < _MIN_POINTS:
        raise DataError(f"only {len(values)} data point; at least {_MIN_POINTS} are needed", source=source)

    arr = np.asarray(values, dtype=np.float64)
    if latlon:
        xyz = latlon_to_xyz(arr[:, 0], arr[:, 1])
    else:
        xyz = arr / np.linalg.norm(arr, axis=1, keepdims=True)
    return PointSet(xyz=xyz, lines=np.asarray(lines, dtype=np.int64), source=source)


def csv_columns(data: str | bytes) -> list[str]:
    """Header names (whitespace stripped) of CSV text, for a column picker; ``[]`` if empty.

    Raises :class:`DataError` if ``data`` is not UTF-8 text.
    """
    text = _decode(data, "upload")
    _, header = next(_rows(text, "upload"), (0, []))
    return [h.strip() for h in header]


def write_points(path: str | os.PathLike[str], xyz: Any, *, decimals: int = 6) -> None:
    """Write points (unit vectors ``(n, 3)``, an array or a tensor on any device) as a CSV with header ``lat,lon``
    in degrees, ``decimals`` places (6 is about 0.1 m); :func:`read_points` reads it back."""
    if hasattr(xyz, "detach"):  # a torch tensor, taken without importing torch here
        xyz = xyz.detach().cpu().numpy()
    lat, lon = xyz_to_latlon(np.asarray(xyz, dtype=np.float64))
    rows = np.stack([lat, lon], axis=1)
    np.savetxt(path, rows, fmt=f"%.{decimals}f", delimiter=",", header="lat,lon", comments="")


def unique_rows(xyz: np.ndarray) -> np.ndarray:
    """Indices (int64) of the first occurrence of each distinct row of ``xyz``, in order of first
    appearance. Rows are compared exactly (as floats), so equal lat/lon strings are duplicates.

    >>> unique_rows(np.array([[0.0, 0, 1], [1, 0, 0], [0, 0, 1]])).tolist()
    [0, 1]
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 2:
        raise ValueError(f"xyz must be 2-dimensional, got shape {xyz.shape}")
    if xyz.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(xyz, axis=0, return_index=True)
    return np.sort(first).astype(np.int64)


def _read_file(path: str | os.PathLike[str], max_bytes: int) -> tuple[bytes, str]:
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
    _check_size(info.st_size, max_bytes, source)
    try:
        with p.open("rb") as f:
            return f.read(max_bytes + 1), source
    except OSError as err:
        raise DataError(f"cannot read the file: {err.strerror or err}", source=source) from None


def _check_size(size: int, max_bytes: int, source: str) -> None:
    if size > max_bytes:
        mb = 1024 * 1024
        raise DataError(
            f"the file is {size / mb:.1f} MB, larger than the limit of {max_bytes / mb:.1f} MB",
            source=source,
        )


def _decode(data: str | bytes, source: str) -> str:
    """UTF-8 text without a byte-order mark; NUL characters mean a binary file."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            raise DataError(
                f"not UTF-8 text (byte 0x{data[err.start]:02x}); is it a binary file? Save it as CSV (UTF-8)",
                source=source,
                line=line,
            ) from None
    else:
        text = data.removeprefix("\ufeff")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(
            "not UTF-8 text (contains NUL bytes); is it a binary file? Save it as CSV (UTF-8)",
            source=source,
            line=line,
        )
    return text


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


def _find(names: list[str], wanted: tuple[str, ...]) -> int | None:
    low = [n.lower() for n in names]
    for i, name in enumerate(low):
        if name in wanted:
            return i
    return None


def _detect(names: list[str], source: str, line: int) -> list[int]:
    """Column indices: ``[lat, lon]`` or ``[x, y, z]``."""
    lat, lon = _find(names, LAT_NAMES), _find(names, LON_NAMES)
    if lat is not None and lon is not None:
        return [lat, lon]
    xyz = [_find(names, (c,)) for c in _XYZ_NAMES]
    if all(i is not None for i in xyz):
        return [i for i in xyz if i is not None]
    found = ", ".join(repr(n) for n in names)
    if lat is not None or lon is not None:
        missing = "longitude (lon/lng/long/longitude)" if lon is None else "latitude (lat/latitude)"
        problem = f"no {missing} column in the header ({found})"
    else:
        problem = f"no recognised header in ({found}); accepted headers: {_ACCEPTED}"
        if all(_is_number(n) for n in names):
            problem += "; the first line looks like data, add a header line such as 'lat,lon'"
    raise DataError(problem, source=source, line=line)


def _pick_latlon(
    names: list[str], lat_col: str | None, lon_col: str | None, source: str, line: int
) -> list[int]:
    """Column indices ``[lat, lon]`` from explicit names, detecting any name left as ``None``."""
    cols: list[int] = []
    for given, aliases, what in ((lat_col, LAT_NAMES, "latitude"), (lon_col, LON_NAMES, "longitude")):
        wanted = aliases if given is None else (given.strip().lower(),)
        i = _find(names, wanted)
        if i is None:
            found = ", ".join(repr(n) for n in names)
            if given is None:
                problem = f"no {what} column ({'/'.join(aliases)}) in the columns found: {found}"
            else:
                problem = f"{what} column {given!r} not found; the columns are: {found}"
            raise DataError(problem, source=source, line=line)
        cols.append(i)
    return cols


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
        shown = s if len(s) <= 40 else s[:37] + "..."
        raise DataError(f"column {column!r}: {shown!r} is not a number", source=source, line=line)
    v = float(s)
    if not math.isfinite(v):
        raise DataError(f"column {column!r}: {s!r} is not finite (NaN or infinity)", source=source, line=line)
    return v


def _check_latlon(lat: float, lon: float, source: str, line: int) -> float:
    """Validate ranges; return lon wrapped from [180, 360) to (-180, 180]."""
    if not -90.0 <= lat <= 90.0:
        raise DataError(f"lat {lat:g} is outside [-90, 90]", source=source, line=line)
    if not -180.0 <= lon < 360.0:
        raise DataError(f"lon {lon:g} is outside [-180, 360)", source=source, line=line)
    return lon - 360.0 if lon > 180.0 else lon

