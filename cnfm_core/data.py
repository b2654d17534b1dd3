"""Reading point sets on the sphere from CSV files: the one reader of point files (CLI, training and pages).

A CSV file holds one point per row, found by header name (case-insensitive, surrounding
whitespace ignored):

* latitude and longitude in degrees, **(lat, lon)**: one ``lat``/``latitude`` column and one
  ``lon``/``lng``/``long``/``longitude`` column; or
* Cartesian coordinates: ``x``, ``y``, ``z`` columns (any length but zero: scaled to unit length).

If both are present, lat/lon wins. Other columns are ignored, but every row has as many fields as the header,
and no two header names are the same. Two latitude (or longitude) columns, or none that is recognised, is a
:class:`ColumnError`, which lists the columns to choose from (``lat_col``/``lon_col``). The text rules
(encoding, delimiters, quotes, numbers) are :mod:`cnfm_core.csvtable`'s, which reads the whole file with numpy.
Every problem with the input is a :class:`DataError` whose one-line message names the source, the line and the
problem.

This module is torch-free (pages read data through it). The train/val/test splits live in
:mod:`cnfm_core.splits`, which draws its permutation with torch.

>>> pts = parse_points("Latitude,Longitude\\n-30.2,-178.47\\n10,200\\n")
>>> pts.n, pts.lines.tolist()
(2, [2, 3])
>>> [round(v, 6) for v in pts.lon.tolist()]
[-178.47, -160.0]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnfm_core.csvtable import Table, read_table
from cnfm_core.decimals import DECIMAL
from cnfm_core.geo import latlon_to_xyz, xyz_to_latlon
from cnfm_core.textfile import DataError, check_size, decode, read_file, shown

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ColumnError",
    "DataError",
    "LAT_NAMES",
    "LON_NAMES",
    "CleanPoints",
    "PointSet",
    "XYZ_NAMES",
    "csv_columns",
    "parse_clean",
    "parse_points",
    "point_columns",
    "read_points",
    "unique_rows",
    "write_points",
]

#: Largest input accepted by default: 50 MiB.
DEFAULT_MAX_BYTES: int = 50 * 1024 * 1024

#: Header names (lower case) of a latitude and of a longitude column, in degrees; the one list of aliases.
LAT_NAMES: tuple[str, ...] = ("lat", "latitude")
LON_NAMES: tuple[str, ...] = ("lon", "lng", "long", "longitude")
XYZ_NAMES: tuple[str, ...] = ("x", "y", "z")
_ACCEPTED: str = "lat/latitude with lon/lng/long/longitude (degrees), or x, y, z (case-insensitive)"
#: Cartesian rows shorter than this are not directions.
_MIN_NORM: float = 1e-9
_MIN_POINTS: int = 2


class ColumnError(DataError):
    """The header does not say which columns hold the points (none recognised, or two candidates for one): the
    user may choose them. ``columns`` are the header's names that can be chosen (non-empty)."""

    def __init__(self, problem: str, *, source: str, line: int | None, columns: tuple[str, ...]) -> None:
        super().__init__(problem, source=source, line=line)
        self.columns = columns


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
        adopt = lambda a, t: a if isinstance(a, np.ndarray) and a.dtype == t and not a.flags.writeable \
            else np.array(a, dtype=t)  # noqa: E731 (read-only arrays of the right type are kept, not copied)
        xyz, lines = adopt(self.xyz, np.float64), adopt(self.lines, np.int64)
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

    @classmethod
    def _adopt(cls, xyz: np.ndarray, lines: np.ndarray, source: str) -> PointSet:
        """A point set that takes (and freezes) fresh float64 ``xyz`` and int64 ``lines`` instead of copying them."""
        xyz.flags.writeable = False
        lines.flags.writeable = False
        return cls(xyz, lines, source)

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
    data, source = read_file(path, max_bytes)
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
    text, empty, a header that looks like data, repeats a name or names no usable columns (a
    :class:`ColumnError`), a named column missing, a row with more or fewer fields than the header
    (a hint when they look like decimal commas), a stray quote, an empty / non-numeric / non-finite
    value, lat outside [-90, 90], lon outside [-180, 360), x, y, z of (near-)zero length (below
    1e-9), no data rows, or fewer than 2 points.
    """
    return _parse(data, source, lat_col, lon_col, max_bytes, text=False).points


@dataclass(frozen=True)
class CleanPoints:
    """Points read from a file, and ``csv``: the same points as a file the reader reads back to the same ``xyz``
    (header ``lat,lon`` or ``x,y,z``, then the numbers of those columns as written, a row a line; never more than
    8 bytes longer than the file read)."""

    points: PointSet
    csv: bytes


def parse_clean(
    data: str | bytes,
    *,
    source: str = "upload",
    lat_col: str | None = None,
    lon_col: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> CleanPoints:
    """:func:`parse_points`, with the points also written as a clean CSV (for keeping an upload), in the same pass.

    >>> clean = parse_clean('name,Lat,Lon\\n"A, b", 10.50 ,200\\n\\nc,-5,1e1\\n')
    >>> clean.csv, clean.points.n
    (b'lat,lon\\n10.50,200\\n-5,1e1\\n', 2)
    """
    return _parse(data, source, lat_col, lon_col, max_bytes, text=True)


def _parse(data: str | bytes, source: str, lat_col: str | None, lon_col: str | None, max_bytes: int, *,
           text: bool) -> CleanPoints:
    table = _table(data, source, max_bytes)
    cols = _columns(table, lat_col, lon_col)
    latlon = len(cols) == 2
    read = table.numbers(cols, check=_check_latlon if latlon else _check_xyz,
                         convert=_latlon_xyz if latlon else _unit, width=3, text=text)
    if not len(read.lines):
        raise DataError("the file has a header but no data rows", source=source)
    if len(read.lines) < _MIN_POINTS:
        raise DataError(f"only {len(read.lines)} data point; at least {_MIN_POINTS} are needed", source=source)
    header = b"lat,lon\n" if latlon else b"x,y,z\n"
    return CleanPoints(PointSet._adopt(read.values, read.lines, source), header + read.text if text else b"")


def point_columns(
    data: str | bytes,
    *,
    source: str = "upload",
    lat_col: str | None = None,
    lon_col: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[str, ...]:
    """The header names of the columns :func:`parse_points` would read, ``(lat, lon)`` or ``(x, y, z)``, from the
    header alone; raises what :func:`parse_points` raises about the header (a :class:`ColumnError` where the
    user may choose the columns)."""
    table = _table(data, source, max_bytes)
    return tuple(table.names[i] for i in _columns(table, lat_col, lon_col))


def csv_columns(data: str | bytes) -> list[str]:
    """Header names (whitespace stripped) of CSV text, for a column picker; ``[]`` if empty.

    Raises :class:`DataError` if ``data`` is not UTF-8 text.
    """
    decode(data, "upload")
    try:
        return list(read_table(data, "upload").names)
    except DataError as err:
        if err.problem == "the file is empty":
            return []
        raise


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


def _table(data: str | bytes, source: str, max_bytes: int) -> Table:
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    check_size(size, max_bytes, source)
    return read_table(data, source)


def _columns(table: Table, lat_col: str | None, lon_col: str | None) -> list[int]:
    """Column indices: ``[lat, lon]`` or ``[x, y, z]``; explicit names where given."""
    names, source, line = table.names, table.source, table.line
    listed = ", ".join(shown(n) for n in names)
    if all(DECIMAL.fullmatch(n) for n in names):
        raise DataError(f"the first line looks like data ({listed}); add a header line such as 'lat,lon' "
                        f"(accepted headers: {_ACCEPTED})", source=source, line=line)
    low = [n.lower() for n in names]
    for i, name in enumerate(low):
        if name and name in low[:i]:
            raise DataError(f"the header names the column {shown(names[i])} twice; give each column its own name",
                            source=source, line=line)
    choosable = tuple(n for n in names if n)
    if lat_col is not None or lon_col is not None:
        cols = []
        for given, aliases, what in ((lat_col, LAT_NAMES, "latitude"), (lon_col, LON_NAMES, "longitude")):
            wanted = aliases if given is None else (given.strip().lower(),)
            found = [i for i, n in enumerate(low) if n in wanted]
            if len(found) != 1:
                problem = (f"{what} column {shown(given)} not found" if given is not None and not found else
                           f"no {what} column ({'/'.join(aliases)})" if not found else
                           f"{len(found)} {what} columns ({', '.join(shown(names[i]) for i in found)})")
                raise ColumnError(f"{problem}; the columns are: {listed}", source=source, line=line,
                                  columns=choosable)
            cols.append(found[0])
        if cols[0] == cols[1]:
            raise ColumnError(f"the same column {shown(names[cols[0]])} is chosen for latitude and longitude",
                              source=source, line=line, columns=choosable)
        return cols
    lat = [i for i, n in enumerate(low) if n in LAT_NAMES]
    lon = [i for i, n in enumerate(low) if n in LON_NAMES]
    for found, what in ((lat, "latitude"), (lon, "longitude")):
        if len(found) > 1:
            raise ColumnError(f"{len(found)} {what} columns ({', '.join(shown(names[i]) for i in found)}); "
                              "choose one", source=source, line=line, columns=choosable)
    if lat and lon:
        return [lat[0], lon[0]]
    xyz = [low.index(c) for c in XYZ_NAMES if c in low]
    if len(xyz) == 3:
        return xyz
    if lat or lon:
        missing = "longitude (lon/lng/long/longitude)" if not lon else "latitude (lat/latitude)"
        problem = f"no {missing} column in the header ({listed})"
    else:
        problem = f"no recognised header in ({listed}); accepted headers: {_ACCEPTED}"
    raise ColumnError(problem, source=source, line=line, columns=choosable)


def _latlon_xyz(values: np.ndarray) -> np.ndarray:
    """Unit vectors of checked (lat, lon) rows, lon wrapped from [180, 360) to (-180, 180]."""
    lon = np.where(values[:, 1] > 180.0, values[:, 1] - 360.0, values[:, 1])
    return latlon_to_xyz(values[:, 0], lon)


def _unit(values: np.ndarray) -> np.ndarray:
    """Checked x, y, z rows scaled to unit length: by the largest magnitude first, so nothing overflows."""
    values = values / np.max(np.abs(values), axis=1, keepdims=True)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def _check_latlon(values: np.ndarray) -> tuple[int, str] | None:
    """The first row whose lat is outside [-90, 90] or lon outside [-180, 360), and why."""
    lat, lon = values[:, 0], values[:, 1]
    bad_lat, bad_lon = ~((lat >= -90.0) & (lat <= 90.0)), ~((lon >= -180.0) & (lon < 360.0))
    bad = np.flatnonzero(bad_lat | bad_lon)
    if not len(bad):
        return None
    i = int(bad[0])
    if bad_lat[i]:
        return i, f"lat {lat[i]:g} is outside [-90, 90]"
    return i, f"lon {lon[i]:g} is outside [-180, 360)"


def _check_xyz(values: np.ndarray) -> tuple[int, str] | None:
    """The first row whose x, y, z has a length below 1e-9 (found without overflow), and why."""
    scale = np.max(np.abs(values), axis=1) if len(values) else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        norm = scale * np.linalg.norm(values / scale[:, None], axis=1)
    bad = np.flatnonzero(~(norm >= _MIN_NORM))
    if not len(bad):
        return None
    x, y, z = values[int(bad[0])]
    return int(bad[0]), (f"x, y, z = {x:g}, {y:g}, {z:g} has (near-)zero length, so it is not a direction on the "
                         "sphere")
