"""Contracts of cnfm_core.angles: the torus CSV reader (wrapping, one-line errors naming file, line and problem)
and the writer (same header, values in [-180, 180), read back exactly to its decimals)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnfm_core.angles import parse_angles, read_angles, wrap_degrees, write_angles
from cnfm_core.data import DataError


def test_reads_names_lines_and_wraps(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("\ufeffPhi ; psi;omega\r\n\r\n-60.5;-45;0\r\n180;350;-180.0\r\n1e2;-540;719.5\r\n")
    pts = read_angles(f)
    assert pts.names == ("Phi", "psi", "omega") and pts.source == "a.csv"
    assert pts.lines.tolist() == [3, 4, 5]
    np.testing.assert_array_equal(pts.degrees, [[-60.5, -45.0, 0.0], [-180.0, -10.0, -180.0], [100.0, -180.0, -0.5]])
    r = pts.radians
    assert r.dtype == np.float64 and bool(((r >= -math.pi) & (r < math.pi)).all())
    np.testing.assert_allclose(r, np.deg2rad(pts.degrees), rtol=1e-15)


def test_wrap_degrees() -> None:
    a = np.array([-180.0, 179.999, 180.0, 540.0, -540.0, 1e9, -1e-300, np.nextafter(180.0, 0.0)])
    w = wrap_degrees(a)
    assert bool(((w >= -180.0) & (w < 180.0)).all())
    assert w[0] == -180.0 and w[1] == 179.999 and w[2] == -180.0 and w[3] == -180.0 and w[4] == -180.0
    assert w[6] == -1e-300 and w[7] == a[7]  # in range: unchanged


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", None, "the file is empty"),
        ("  \n\n", None, "the file is empty"),
        ("phi,psi\n", None, "header but no data rows"),
        ("phi,psi\n1,2\n", None, "only 1 data point; at least 2"),
        ("10,20\n1,2\n3,4\n", 1, "looks like data; add a header"),
        ("phi,,psi\n1,2,3\n4,5,6\n", 1, "column 2 has no name"),
        ("phi,psi\n1,2\n3\n", 3, "1 fields, but the header names 2 columns"),
        ("phi,psi\n1,2\n3,4,5\n", 3, "3 fields, but the header names 2 columns"),
        ("phi,psi\n1,2\n\n3,abc\n", 4, "column 'psi': 'abc' is not a number"),
        ("phi,psi\n1,2\n3, \n", 3, "column 'psi' is empty"),
        ("phi,psi\nnan,2\n3,4\n", 2, "column 'phi': 'nan' is not finite"),
        ("phi,psi\n1,-inf\n3,4\n", 2, "column 'psi': '-inf' is not finite"),
        ("phi,psi\n1,2\n\"3,4\n", 3, "fields, but the header"),
    ],
)
def test_errors_name_file_line_and_problem(tmp_path: Path, text: str, line: int | None, problem: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(DataError) as err:
        read_angles(f)
    msg = str(err.value)
    assert "\n" not in msg and problem in msg
    assert msg.startswith("bad.csv, line " + str(line) + ":" if line else "bad.csv:")
    assert err.value.line == line and err.value.source == "bad.csv"


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^nope.csv: file not found"):
        read_angles(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_angles(tmp_path)
    big = tmp_path / "big.csv"
    big.write_text("phi\n" + "1.0\n" * 100)
    with pytest.raises(DataError, match=r"^big.csv: the file is 0.0 MB, larger than the limit"):
        read_angles(big, max_bytes=100)
    with pytest.raises(DataError, match="not UTF-8"):
        parse_angles(b"phi\n\xff\xfe\n", source="bin.csv")
    # the default limit is 50 MB, checked before reading
    sparse = tmp_path / "huge.csv"
    with sparse.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024 + 1)
    with pytest.raises(DataError, match="50.0 MB, larger than the limit of 50.0 MB"):
        read_angles(sparse)


def test_writer_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rad = rng.uniform(-math.pi, math.pi, size=(50, 3))
    rad[0] = [math.pi - 1e-12, -math.pi, 0.0]  # rounds to 180 degrees: written as -180
    f = tmp_path / "out.csv"
    names = ("phi", "psi, second", "chi")
    write_angles(f, names, rad)
    back = read_angles(f)
    assert back.names == names and back.n == 50
    assert f.read_text().splitlines()[0] == 'phi,"psi, second",chi'
    assert bool(((back.degrees >= -180.0) & (back.degrees < 180.0)).all())
    assert back.degrees[0].tolist() == [-180.0, -180.0, 0.0]
    np.testing.assert_allclose(back.degrees[1:], np.rad2deg(rad[1:]), rtol=0, atol=5e-7)
    with pytest.raises(ValueError, match="one column per name"):
        write_angles(f, ("a",), rad)


def test_reader_is_torch_free() -> None:
    code = "import sys, cnfm_core.angles; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"
