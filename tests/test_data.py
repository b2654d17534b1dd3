"""Contracts of cnfm_core.data: reading point files, rejecting bad input, and the splits."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from cnfm_core.data import (
    DEFAULT_MAX_BYTES,
    ColumnError,
    DataError,
    PointSet,
    csv_columns,
    parse_clean,
    parse_points,
    point_columns,
    read_points,
    unique_rows,
)
from cnfm_core.sphere import latlon_to_xyz
from cnfm_core.splits import SPLITS, Split, make_split

EARTH_ROWS = {"volcano": 827, "earthquake": 6120, "flood": 4875}
EARTH_UNIQUE = {"volcano": 267, "earthquake": 5447, "flood": 4861}
SEEDS = range(5)



@pytest.fixture(scope="module")
def earth(earth_dir: Path) -> dict[str, PointSet]:
    return {name: read_points(earth_dir / f"{name}.csv") for name in EARTH_ROWS}


def write(tmp_path: Path, text: str | bytes, name: str = "points.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


def assert_latlon(points: PointSet, lat: list[float], lon: list[float]) -> None:
    np.testing.assert_allclose(points.lat, lat, atol=1e-9)
    np.testing.assert_allclose(points.lon, lon, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# The Earth files


@pytest.mark.parametrize("name", list(EARTH_ROWS))
def test_earth_files(earth: dict[str, PointSet], name: str) -> None:
    points = earth[name]
    assert points.n == EARTH_ROWS[name]
    assert points.source == f"{name}.csv"
    assert points.xyz.dtype == np.float64 and points.xyz.shape == (points.n, 3)
    np.testing.assert_allclose(np.linalg.norm(points.xyz, axis=1), 1.0, atol=1e-12)
    assert points.lines.dtype == np.int64
    np.testing.assert_array_equal(points.lines, np.arange(2, points.n + 2))
    assert len(unique_rows(points.xyz)) == EARTH_UNIQUE[name]
    assert points.lat.min() >= -63 and points.lat.max() <= 74
    assert points.lon.min() > -180 and points.lon.max() <= 180


def test_first_volcano_row(earth: dict[str, PointSet]) -> None:
    assert_latlon(earth["volcano"].subset(np.array([0])), [-30.2], [-178.47])


@pytest.mark.parametrize("name", list(EARTH_ROWS))
def test_standard_split_reproduces_shared_files(
    earth_dir: Path, earth: dict[str, PointSet], name: str
) -> None:
    with open(earth_dir / "splits" / f"{name}_rfm_protocol_seeds0-4.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["row"]) for r in table] == list(range(earth[name].n))
    for seed in SEEDS:
        split = make_split(earth[name], mode="standard", seed=seed)
        labels = np.empty(earth[name].n, dtype=object)
        for part in ("train", "val", "test"):
            labels[getattr(split, part)] = part
        expected = np.array([r[f"seed{seed}"] for r in table], dtype=object)
        assert (labels == expected).all(), f"{name} seed {seed}"


def test_standard_split_sizes(earth: dict[str, PointSet]) -> None:
    split = make_split(earth["volcano"], seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (663, 82, 82)
    assert (split.mode, split.seed) == ("standard", 0)
    assert sorted(np.concatenate([split.train, split.val, split.test]).tolist()) == list(range(827))


def test_standard_split_is_random_split() -> None:
    n, seed = 57, 3
    points = PointSet(xyz=np.tile([0.0, 0.0, 1.0], (n, 1)), lines=np.arange(n) + 2, source="t")
    split = make_split(points, seed=seed)
    parts = torch.utils.data.random_split(
        range(n), [n - 2 * (n // 10), n // 10, n // 10], generator=torch.Generator().manual_seed(seed)
    )
    for got, want in zip((split.train, split.val, split.test), parts, strict=True):
        assert got.dtype == np.int64
        assert got.tolist() == list(want.indices)


@pytest.mark.parametrize("name", list(EARTH_ROWS))
def test_dedup_split(earth: dict[str, PointSet], name: str) -> None:
    points = earth[name]
    for seed in (0, 1):
        split = make_split(points, mode="dedup", seed=seed)
        union = np.concatenate([split.train, split.val, split.test])
        assert len(np.unique(union)) == len(union), "parts overlap"
        assert sorted(union.tolist()) == sorted(unique_rows(points.xyz).tolist())
        assert len(unique_rows(points.xyz[union])) == len(union), "a location appears twice"
        n = EARTH_UNIQUE[name]
        assert len(split.val) == len(split.test) == n // 10


# ---------------------------------------------------------------------------------------------
# Reading: formats


def test_round_trip_latlon(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lat = np.concatenate([rng.uniform(-90, 90, 50), [90.0, -90.0, 0.0, 12.5, -7.0]])
    lon = np.concatenate([rng.uniform(-179.9, 180, 50), [0.0, 0.0, 180.0, 0.0, 45.0]])
    text = "lat,lon\n" + "".join(f"{a!r},{o!r}\n" for a, o in zip(lat.tolist(), lon.tolist(), strict=True))
    points = read_points(write(tmp_path, text))
    want = latlon_to_xyz(torch.tensor(lat), torch.tensor(lon)).numpy()
    np.testing.assert_allclose(points.xyz, want, atol=1e-15)
    np.testing.assert_allclose(points.lat, lat, atol=1e-9)
    away = np.abs(lat) < 89.9  # longitude is undefined at the poles
    np.testing.assert_allclose(points.lon[away], lon[away], atol=1e-9)


def test_longitude_wrapping() -> None:
    points = parse_points("lat,lon\n0,180\n0,-180\n0,359.5\n10,200\n0,-179.5\n")
    assert_latlon(points, [0, 0, 0, 10, 0], [180, 180, -0.5, -160, -179.5])


@pytest.mark.parametrize(
    "header",
    [
        "lat,lon",
        "LAT,LON",
        "Latitude,Longitude",
        " latitude , LONGITUDE ",
        "lat,lng",
        "Lat,Long",
        '"lat","lon"',
    ],
)
def test_header_aliases(header: str) -> None:
    assert_latlon(parse_points(f"{header}\n10,20\n-5,-30\n"), [10, -5], [20, -30])


def test_column_order_follows_header() -> None:
    assert_latlon(parse_points("lon,lat\n20,10\n-30,-5\n"), [10, -5], [20, -30])


def test_xyz_file(tmp_path: Path) -> None:
    points = read_points(write(tmp_path, "X,Y,Z\n0,0,2\n3,0,0\n0,-0.5,0\n1,1,0\n"))
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(points.xyz, [[0, 0, 1], [1, 0, 0], [0, -1, 0], [s, s, 0]], atol=1e-15)


def test_latlon_preferred_over_xyz() -> None:
    assert_latlon(parse_points("x,y,z,lat,lon\n1,0,0,10,20\n1,0,0,-5,-30\n"), [10, -5], [20, -30])


def test_bom_crlf_blank_lines_and_line_numbers(tmp_path: Path) -> None:
    raw = "\ufefflat,lon\r\n\r\n10,20\r\n  \r\n-5,-30\r\n\r\n".encode()
    points = read_points(write(tmp_path, raw))
    assert_latlon(points, [10, -5], [20, -30])
    assert points.lines.tolist() == [3, 5]
    assert_latlon(parse_points("\ufefflat,lon\n10,20\n-5,-30\n"), [10, -5], [20, -30])


def test_extra_and_quoted_columns() -> None:
    text = 'id,name,lat,depth,lon\n1,"Kermadec, arc",-30.2,10,-178.47\n2,"Sakura ""jima""",31.58,,130.67\n'
    assert_latlon(parse_points(text), [-30.2, 31.58], [-178.47, 130.67])


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_other_delimiters(delimiter: str) -> None:
    text = f"lat{delimiter}lon\n10{delimiter}20\n-5{delimiter}-30\n"
    assert_latlon(parse_points(text), [10, -5], [20, -30])


def test_column_override() -> None:
    text = "lat,lon,a,b\n0,0,10,20\n0,0,-5,-30\n"
    assert_latlon(parse_points(text, lat_col="a", lon_col=" B "), [10, -5], [20, -30])
    assert_latlon(parse_points("phi,lon\n10,20\n-5,-30\n", lat_col="phi"), [10, -5], [20, -30])


def test_csv_columns() -> None:
    assert csv_columns(b'\xef\xbb\xbf\n id ;"Lat";lon\n1;2;3\n') == ["id", "Lat", "lon"]
    assert csv_columns("") == []


def test_pointset_subset_and_read_only() -> None:
    points = parse_points("lat,lon\n1,2\n3,4\n5,6\n", source="s.csv")
    sub = points.subset(np.array([2, 0]))
    assert sub.lines.tolist() == [4, 2] and sub.source == "s.csv"
    assert_latlon(sub, [5, 1], [6, 2])
    with pytest.raises(ValueError):
        points.xyz[0, 0] = 1.0


def test_unique_rows() -> None:
    xyz = np.array([[0, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=float)
    idx = unique_rows(xyz)
    assert idx.dtype == np.int64 and idx.tolist() == [0, 1, 3]
    assert unique_rows(np.zeros((0, 3))).tolist() == []


# ---------------------------------------------------------------------------------------------
# Reading: bad input. Each case: file text, expected line (or None), words that must appear.

BAD_ROWS: list[tuple[str, str, int | None, tuple[str, ...]]] = [
    ("non-numeric", "lat,lon\n1,2\n3,abc\n", 3, ("'abc'", "'lon'", "not a number")),
    ("empty value", "lat,lon\n1,2\n\n3,\n", 4, ("'lon'", "empty")),
    ("empty value (spaces)", "lat,lon\n1,2\n  ,4\n", 3, ("'lat'", "empty")),
    ("nan", "lat,lon\n1,2\nnan,4\n", 3, ("'lat'", "NaN")),
    ("infinity", "lat,lon\n1,2\n3,-inf\n", 3, ("'lon'", "infinity")),
    ("lat too large", "lat,lon\n1,2\n3,4\n5,6\n95.0,0\n", 5, ("lat 95", "outside [-90, 90]")),
    ("lat too small", "lat,lon\n-90.5,2\n3,4\n", 2, ("lat -90.5", "outside")),
    ("lon 360", "lat,lon\n1,2\n3,360\n", 3, ("lon 360", "outside [-180, 360)")),
    ("lon too small", "lat,lon\n1,2\n3,-180.5\n", 3, ("lon -180.5", "outside")),
    ("zero-length xyz", "x,y,z\n1,0,0\n0,0,0\n", 3, ("zero length",)),
    ("near-zero xyz", "x,y,z\n1,0,0\n1e-12,0,0\n", 3, ("zero length",)),
    ("too few fields", "id,lat,lon\n1,2,3\n4,5\n", 3, ("too few fields", "'lon'")),
    ("newline in value", 'lat,lon\n1,2\n"a\nb",4\n', 3, ("not a number",)),
    ("no header", "1.0,2.0\n3,4\n", 1, ("header", "lat", "x, y, z", "looks like data")),
    ("unknown header", "\nfoo,bar\n3,4\n", 2, ("header", "'foo'", "longitude")),
    ("latitude only", "lat,depth\n3,4\n", 1, ("longitude", "'depth'")),
    ("empty file", "", None, ("empty",)),
    ("blank file", "\n \r\n\n", None, ("empty",)),
    ("header only", "lat,lon\n\n", None, ("header", "no data rows")),
    ("one point", "lat,lon\n1,2\n", None, ("only 1", "at least 2")),
]


@pytest.mark.parametrize(("text", "line", "words"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_bad_input(tmp_path: Path, text: str, line: int | None, words: tuple[str, ...]) -> None:
    with pytest.raises(DataError) as info:
        read_points(write(tmp_path, text, "bad.csv"))
    check_error(info.value, "bad.csv", line, words)
    with pytest.raises(DataError) as info:
        parse_points(text)
    check_error(info.value, "upload", line, words)


def check_error(err: DataError, source: str, line: int | None, words: tuple[str, ...]) -> None:
    message = str(err)
    assert "\n" not in message and "\r" not in message
    assert err.source == source and err.line == line
    prefix = source if line is None else f"{source}, line {line}:"
    assert message.startswith(prefix), message
    for word in words:
        assert word in message, (word, message)


def test_error_message_format() -> None:
    assert str(DataError("lat 95.0 is outside [-90, 90]", source="volcano.csv", line=5)) == (
        "volcano.csv, line 5: lat 95.0 is outside [-90, 90]"
    )
    assert str(DataError("the file is empty", source="empty.csv")) == "empty.csv: the file is empty"
    assert issubclass(DataError, ValueError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_points(tmp_path / "nope.csv")
    check_error(info.value, "nope.csv", None, ("not found",))


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError) as info:
        read_points(tmp_path / "dir.csv")
    check_error(info.value, "dir.csv", None, ("directory",))


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 1),
        (b"lat,lon\n1,2\n\xff\xfe3,4\n", 3),
        ("lat,lon\n1,2\n3,4\n".encode("utf-16"), 1),
    ],
    ids=["png", "latin-1", "utf-16"],
)
def test_binary_file(tmp_path: Path, raw: bytes, line: int) -> None:
    with pytest.raises(DataError) as info:
        read_points(write(tmp_path, raw, "bin.csv"))
    check_error(info.value, "bin.csv", line, ("UTF-8", "binary"))


def test_too_large_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.csv"
    with open(path, "wb") as f:
        f.truncate(60 * 1024 * 1024)  # sparse: takes no disk space or time

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_open)
    with pytest.raises(DataError) as info:
        read_points(path)
    check_error(info.value, "big.csv", None, ("60.0 MB", "limit", "50.0 MB"))


def test_too_large_small_limit(tmp_path: Path) -> None:
    text = "lat,lon\n" + "1,2\n" * 1000
    assert read_points(write(tmp_path, text)).n == 1000
    with pytest.raises(DataError) as info:
        read_points(write(tmp_path, text), max_bytes=1000)
    check_error(info.value, "points.csv", None, ("MB", "limit"))
    with pytest.raises(DataError, match="limit"):
        parse_points(text, max_bytes=1000)
    assert DEFAULT_MAX_BYTES == 50 * 1024 * 1024


OVERRIDE_CASES: list[tuple[str, dict[str, str], tuple[str, ...]]] = [
    ("lat,lon,a\n1,2,3\n4,5,6\n", {"lat_col": "phi"}, ("'phi'", "not found", "'lat', 'lon', 'a'")),
    ("lat,lon,a\n1,2,3\n4,5,6\n", {"lat_col": "a", "lon_col": "theta"}, ("'theta'", "not found", "'a'")),
    ("lat,q,a\n1,2,3\n4,5,6\n", {"lat_col": "a"}, ("longitude", "'q'")),
]


@pytest.mark.parametrize(("text", "kwargs", "words"), OVERRIDE_CASES)
def test_column_override_missing(text: str, kwargs: dict[str, str], words: tuple[str, ...]) -> None:
    with pytest.raises(DataError) as info:
        parse_points(text, **kwargs)
    check_error(info.value, "upload", 1, words)


# ---------------------------------------------------------------------------------------------
# Reading: files that were accepted but read wrongly (docs/reliability.md, the one reader)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("x,y,z\n1e200,0,0\n0,1e200,0\n", [[1, 0, 0], [0, 1, 0]]),
        ("x,y,z\n-1e308,0,0\n1.7e308,1.7e308,1.7e308\n", [[-1, 0, 0], [3**-0.5] * 3]),
        ("x,y,z\n3e-9,4e-9,0\n1e-320,0,2e-9\n", [[0.6, 0.8, 0], [0, 0, 1]]),
    ],
    ids=["1e200", "near the float64 maximum", "tiny but not below 1e-9"],
)
def test_cartesian_rows_of_any_size_are_directions(text: str, want: list[list[float]]) -> None:
    """Rows of about 1e154 or more overflowed the norm and became zero vectors (then NaN in training)."""
    points = parse_points(text)
    np.testing.assert_allclose(points.xyz, want, atol=1e-15)
    assert np.all(np.isfinite(points.xyz))


def test_more_fields_than_the_header_is_an_error_with_a_decimal_comma_hint() -> None:
    with pytest.raises(DataError) as info:
        parse_points("lat,lon\n12,5,45,3\n1,2\n")
    check_error(info.value, "upload", 2, ("too many fields", "4 fields", "2 columns", "decimal commas"))
    with pytest.raises(DataError) as info:
        parse_points("lat,lon\n1,2\n3,4,note\n")
    check_error(info.value, "upload", 3, ("too many fields", "3 fields"))
    assert "decimal" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "words", "choose"),
    [
        ("lat,lon,lat\n1,2,3\n4,5,6\n", ("'lat'", "twice"), False),
        ("Lat,lon,LAT\n1,2,3\n4,5,6\n", ("'LAT'", "twice"), False),
        ("x,y,z,x\n1,0,0,1\n0,1,0,1\n", ("'x'", "twice"), False),
        ("lat,latitude,lon\n1,2,3\n4,5,6\n", ("2 latitude columns", "'lat', 'latitude'"), True),
        ("lat,lon,lng\n1,2,3\n4,5,6\n", ("2 longitude columns",), True),
    ],
)
def test_repeated_or_ambiguous_columns_are_errors(text: str, words: tuple[str, ...], choose: bool) -> None:
    """The first of two same-named columns was taken without notice."""
    with pytest.raises(DataError) as info:
        parse_points(text)
    check_error(info.value, "upload", 1, words)
    assert isinstance(info.value, ColumnError) == choose


def test_stray_and_unclosed_quotes() -> None:
    with pytest.raises(DataError) as info:
        parse_points('lat,lon\n1,2\n3"x,4\n')
    check_error(info.value, "upload", 3, ("quote", "inside a field"))
    with pytest.raises(DataError) as info:
        parse_points('lat,lon\n1,2\n\n"3,4\n5,6\n')
    check_error(info.value, "upload", 4, ("quote", "never closed"))


def test_numbers_are_ascii_decimals_read_exactly() -> None:
    tokens = ["0.1", "-0", "+.5", "5.", "1e-3", "12345678901234567890", "0.30000000000000004", "4.9e-324", "1E+2"]
    text = "lat,lon,a\n" + "".join(f"0,{t},1\n" for t in tokens)
    assert parse_points(text, lat_col="lat", lon_col="a").n == len(tokens)
    cols = parse_clean("x,y,z\n" + "".join(f"{t},1,0\n" for t in tokens))
    assert cols.csv.decode().splitlines()[1:] == [f"{t},1,0" for t in tokens]
    for bad in ("1_0", "\u0661", "0x10", "1,5", "1e", "--1", "1.2.3", ".", "e5", "1e999"):
        with pytest.raises(DataError, match="column 'lon'"):
            parse_points(f'lat,lon\n1,2\n3,"{bad}"\n')  # quoted, so that "1,5" stays one field


@pytest.mark.parametrize(
    "text",
    [
        "City,Latitude,Longitude\nA,10.5,20\nB,-33.9,151.2\n",
        '\ufeff\r\n id ;"Lat";lon\r\n1; " 10.50 " ;200\r\n\r\n2;-5;1e1',
        "X,Y,Z,extra\n1e200,0,0,x\n0,2,0,y\n",
        'a,lat,lon\n"multi\nline",1,2\n"q""x",3,4\n',
    ],
)
def test_the_clean_copy_reads_back_to_the_same_points(text: str) -> None:
    clean = parse_clean(text, source="f.csv")
    again = parse_points(clean.csv)
    np.testing.assert_array_equal(again.xyz, clean.points.xyz)
    assert again.lines.tolist() == list(range(2, again.n + 2))
    assert len(clean.csv) <= len(text.encode()) + 8
    assert point_columns(clean.csv) in (("lat", "lon"), ("x", "y", "z"))


@pytest.mark.parametrize("quoted", [False, True], ids=["windows cut in advance", "windows one after another"])
def test_a_file_of_many_windows_keeps_its_lines_and_its_first_error(quoted: bool) -> None:
    """The reader scans about 1 MB at a time (several at once when it can): lines and errors across windows."""
    n = 200_000
    lat = np.arange(n) % 180 - 89.5
    cell = '"a, b"' if quoted else "a"
    rows = [f"{cell},{a},{i % 360 - 179}" for i, a in enumerate(lat.tolist())]
    rows[1000] += "\n  "  # a blank line in the first window
    text = "name,lat,lon\n" + "\n".join(rows) + "\n"
    points = parse_points(text)
    want = np.r_[np.arange(2, 1003), np.arange(1004, n + 3)]
    assert points.n == n and points.lines.tolist() == want.tolist()
    np.testing.assert_allclose(points.lat, lat, atol=1e-9)
    bad = rows.copy()
    bad[150_000] = f"{cell},95,0"
    bad[190_000] = f"{cell},x,0"
    with pytest.raises(DataError) as info:
        parse_points("name,lat,lon\n" + "\n".join(bad) + "\n")
    check_error(info.value, "upload", 150_003, ("lat 95",))


# ---------------------------------------------------------------------------------------------
# Splits: modes


def points_on_circle(n: int) -> PointSet:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    xyz = np.stack([np.cos(t), np.sin(t), np.zeros(n)], axis=1)
    return PointSet(xyz=xyz, lines=np.arange(n) + 2, source="circle")


def test_split_none() -> None:
    split = make_split(points_on_circle(7), mode="none", seed=4)
    assert split.train.tolist() == list(range(7))
    assert split.val.size == split.test.size == 0
    assert split.val.dtype == split.test.dtype == np.int64
    assert (split.mode, split.seed) == ("none", 4)


@pytest.mark.parametrize("mode", ["standard", "dedup"])
def test_split_fewer_than_ten_points(mode: str) -> None:
    split = make_split(points_on_circle(9), mode=mode)
    assert sorted(split.train.tolist()) == list(range(9))
    assert split.val.size == split.test.size == 0


def test_dedup_on_duplicates() -> None:
    base = points_on_circle(30)
    idx = np.array([i % 30 for i in range(75)])
    points = base.subset(idx)
    split = make_split(points, mode="dedup", seed=2)
    union = np.concatenate([split.train, split.val, split.test])
    assert sorted(union.tolist()) == list(range(30))
    assert (len(split.train), len(split.val), len(split.test)) == (24, 3, 3)


def test_unknown_split_mode() -> None:
    with pytest.raises(ValueError, match="standard, dedup, none") as info:
        make_split(points_on_circle(20), mode="random")
    assert "'random'" in str(info.value)
    assert set(SPLITS) == {"standard", "dedup", "none"}


def test_split_is_deterministic() -> None:
    points = points_on_circle(40)
    split: Callable[[int], Split] = lambda seed: make_split(points, seed=seed)  # noqa: E731
    assert split(1).train.tolist() == split(1).train.tolist()
    assert split(1).train.tolist() != split(2).train.tolist()
