"""The one reader of point files, fuzzed: 1,200 seeded files, valid and hostile, and the same decisions on every path.

Each generated file is valid (its points are computed here, independently of the reader, from the numbers as
written), or broken in one known way at a known line (the reader must name that line), or scrambled (any outcome,
but a parse or a one-line :class:`DataError`, never another exception). A sample goes through the CLI (in process,
and two as real subprocesses) and through the upload path (the uploads module, and a few through the Data page in
``AppTest``): each accepts and rejects exactly the files the reader accepts and rejects.
"""

from __future__ import annotations

import math
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cnfm_core.data import LAT_NAMES, LON_NAMES, ColumnError, DataError, PointSet, parse_points
from cnfm_core.decimals import DECIMAL, numbers

REPO = Path(__file__).resolve().parents[1]
SEED = 20261130
N_FILES = 1200
_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class Case:
    name: str
    data: bytes
    kind: str  # "valid", "broken" or "scrambled"
    xyz: np.ndarray | None = None  # valid: the points
    line: int | None = None  # broken: the line the error must name (None: the whole file, or not known)


@dataclass
class Draft:
    """A valid file in parts, before it is joined: records (a row's text, which may hold quoted line breaks)."""

    header: list[str]
    rows: list[list[str]]
    numeric: list[int]  # the columns the reader must read, in reading order
    latlon: bool
    delimiter: str
    eol: str
    blank_before: list[str]  # per record (header first): blank lines written before it
    bom: bool
    trailing_eol: bool

    def records(self) -> list[str]:
        return [self.delimiter.join(r) for r in [self.header, *self.rows]]

    def join(self) -> tuple[str, list[int]]:
        """The file's text and the line of each data row."""
        out, lines, line = [], [], 1
        for i, rec in enumerate(self.records()):
            for blank in self.blank_before[i]:
                out.append(blank + self.eol)
                line += 1
            if i:
                lines.append(line)
            out.append(rec + (self.eol if i < len(self.rows) or self.trailing_eol else ""))
            line += len(_BREAK.findall(rec)) + 1
        return ("\ufeff" if self.bom else "") + "".join(out), lines


def _number(rng: random.Random, v: float) -> str:
    forms: list[Callable[[float], str]] = [repr, lambda x: f"{x:.3f}", lambda x: f"{x:.4e}", lambda x: f"{x:+.2f}",
                                           lambda x: f"{x:.0f}", lambda x: f"{x:.6g}", lambda x: f"{x:.17g}"]
    s = rng.choice(forms)(v)
    if rng.random() < 0.1:
        s = f'"{s}"'
    if rng.random() < 0.1:
        s = " " * rng.randint(1, 2) + s + " " * rng.randint(0, 2)
    return s


_TEXT = ["Kermadec", "São Paulo", "![b](http://HOST/b.png)", "<img src=x onerror=alert(1)>", "**bold**", "$x$",
         ":smile:", "a # b", "tab\\there", "ünïcødé ✓", "", "O'Brien"]


def _cell(rng: random.Random, delimiter: str) -> str:
    text = rng.choice(_TEXT)
    if rng.random() < 0.3:
        text = f"{text}{delimiter} more{rng.choice(['', chr(10), chr(13) + chr(10)])}\"quoted\""
    if any(c in text for c in f'{delimiter}"\r\n') or rng.random() < 0.2:
        return '"' + text.replace('"', '""') + '"'
    return text


def _draft(rng: random.Random) -> Draft:
    latlon = rng.random() < 0.7
    delimiter = rng.choice([",", ";", "\t"])

    def name(options: tuple[str, ...]) -> str:
        s = rng.choice(options)
        s = rng.choice([s, s.upper(), s.title()])
        return rng.choice([s, f" {s} ", f'"{s}"'])

    cols = [name(LAT_NAMES), name(LON_NAMES)] if latlon else [name(("x",)), name(("y",)), name(("z",))]
    if not latlon:
        rng.shuffle(cols)
    extras = rng.sample(["id", "name", "depth", "note", "when"], rng.randint(0, 3))
    if latlon and rng.random() < 0.1:
        extras += ["x", "y", "z"]  # lat/lon wins over x, y, z
    header = cols + extras
    order = list(range(len(header)))
    rng.shuffle(order)
    header = [header[i] for i in order]
    where = {i: order.index(i) for i in range(len(header))}
    numeric = [where[0], where[1]] if latlon else [where[i] for i in range(3)]
    if not latlon:  # x, y, z are read in the order x, y, z, whatever the file's order
        numeric = sorted(numeric, key=lambda j: header[j].strip(' "').lower())
    rows = []
    for _ in range(rng.randint(2, 25)):
        row = [""] * len(header)
        if latlon:
            lat = rng.choice([rng.uniform(-90, 90), 90.0, -90.0, 0.0])
            lon = rng.choice([rng.uniform(-180, 359.4), 180.0, -180.0, 359.25])
            row[numeric[0]], row[numeric[1]] = _number(rng, lat), _number(rng, lon)
        else:
            scale = 10 ** rng.uniform(-4, 300)
            v = [rng.gauss(0, 1) * scale for _ in range(3)]
            v[rng.randrange(3)] = rng.choice([1, -1]) * scale  # never (near) zero
            for j, x in zip(numeric, v, strict=True):
                row[j] = _number(rng, x)
        for j in range(len(header)):
            if j not in numeric:
                row[j] = _cell(rng, delimiter) if header[j] not in ("x", "y", "z") else "1"
        rows.append(row)
    blank = [[rng.choice(["", "  ", "\t "]) for _ in range(rng.choice([0, 0, 0, 1, 2]))] for _ in range(len(rows) + 1)]
    return Draft(header, rows, numeric, latlon, delimiter, rng.choice(["\n", "\r\n", "\r"]), blank,
                 rng.random() < 0.2, rng.random() < 0.8)


def _expected(d: Draft) -> np.ndarray:
    """The points, from the numbers as written, with math (not the reader's numpy)."""
    out = []
    for row in d.rows:
        v = [float(row[j].strip().strip('"').strip()) for j in d.numeric]
        if d.latlon:
            lat, lon = math.radians(v[0]), math.radians(v[1] - 360 if v[1] > 180 else v[1])
            out.append([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
        else:
            m = max(abs(x) for x in v)
            u = [x / m for x in v]
            n = math.sqrt(sum(x * x for x in u))
            out.append([x / n for x in u])
    return np.array(out)


_JUNK = ["abc", "1_0", "0x1A", "\u0661\u0662", "1.2.3", "--5", "e5", "\u00bd", "![b](http://HOST/b.png)", "1 2",
         "<script>alert(1)</script>", "**9**", "$x$", "\x1b[31m1", "nan", "NaN", "inf", "-Infinity", "1e999", "",
         "  ", "9" * 30 + "x", "1" * 400 + "e", "\u20281", "+-1", "1e+", ".", "1,5"]


def _break(rng: random.Random, d: Draft) -> tuple[str, int | None, str]:
    """``d`` broken in one way: the text, the line the error must name, and what was done."""
    _, lines = d.join()
    k = rng.randrange(len(d.rows))
    row, j = d.rows[k], rng.choice(d.numeric)
    how = rng.choice(["extra", "missing", "junk", "junk", "junk", "range", "zero", "stray", "dup", "noheader",
                      "unknown", "headeronly", "onerow", "utf8", "nul", "unclosed", "long"])
    line: int | None = lines[k]
    if how == "extra":
        row.append(rng.choice(["1", "", "x"]))
    elif how == "missing":
        row.pop()
    elif how == "junk":
        junk = rng.choice(_JUNK)
        row[j] = f'"{junk}"' if d.delimiter in junk or '"' in junk or "\n" in junk else junk
    elif how in ("range", "zero") and d.latlon:
        row[d.numeric[0]] = rng.choice(["90.0001", "-91", "1e3"])
        if rng.random() < 0.5:
            row[d.numeric[0]], row[d.numeric[1]] = "0", rng.choice(["360", "-180.5", "720"])
    elif how in ("range", "zero"):
        for jj in d.numeric:
            row[jj] = rng.choice(["0", "-0", "1e-12", "0.0"])
    elif how == "stray":  # the error names the line of the quote, within a row of quoted line breaks
        row[j] = row[j].strip().strip('"') + '"x'
        line = lines[k] + len(_BREAK.findall(d.delimiter.join(row[:j])))
    elif how == "dup":
        d.header.append(d.header[d.numeric[0]].strip(' "').upper())
        for r in d.rows:
            r.append("1")
        line = 1 + len(d.blank_before[0])
    elif how == "noheader":
        d.header = d.rows.pop(0)
        line = 1 + len(d.blank_before[0])
    elif how == "unknown":
        d.header[d.numeric[0]] = "latt" if d.latlon else "w"
        line = 1 + len(d.blank_before[0])
    elif how in ("headeronly", "onerow"):
        d.rows = d.rows[: 0 if how == "headeronly" else 1]
        line = None
    elif how in ("utf8", "nul"):  # named by the line of the byte
        row[j] = row[j] + ("\udcff" if how == "utf8" else "\x00")
        line = lines[k] + len(_BREAK.findall(d.delimiter.join(row[:j])))
    elif how == "unclosed":
        row[j] = '"' + row[j].strip().strip('"')
        line = None
    else:  # a number of 100,000 digits: beyond float64
        row[j] = "7" * 100_000
    text, _ = d.join()
    return text, line, how


def generate(n: int = N_FILES, seed: int = SEED) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    specials = [b"", b"\xef\xbb\xbf", b"\n\n \r\n", b"lat,lon", b"lat,lon\n\n", b"\x89PNG\r\n\x1a\n\x00\x00",
                "lat,lon\n1,2\n3,4\n".encode("utf-16"), b"lat,lon\n" + b"1," * 200_000 + b"2\n3,4\n"]
    for i in range(n):
        name = f"f{i:04d}.csv"
        if i < len(specials):
            cases.append(Case(name, specials[i], "broken"))
            continue
        d = _draft(rng)
        roll = rng.random()
        if roll < 0.35:
            text, lines = d.join()
            cases.append(Case(name, text.encode("utf-8"), "valid", xyz=_expected(d)))
        elif roll < 0.85:
            text, line, how = _break(rng, d)
            data = text.encode("utf-8", "surrogateescape")
            cases.append(Case(f"{how}-{name}", data, "broken", line=line))
        else:
            data = bytearray(d.join()[0].encode("utf-8"))
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(len(data) + 1)
                data[at:at + rng.randint(0, 2)] = bytes(rng.randrange(256) for _ in range(rng.randint(0, 3)))
            cases.append(Case(f"scrambled-{name}", bytes(data), "scrambled"))
    return cases


CASES = generate()


def read(case: Case) -> PointSet | DataError:
    try:
        return parse_points(case.data, source=case.name)
    except DataError as err:
        return err


def test_the_generator_covers_what_it_should() -> None:
    kinds = [c.kind for c in CASES]
    assert len(CASES) >= 1000 and kinds.count("valid") > 300 and kinds.count("broken") > 450
    assert sum(c.line is not None for c in CASES) > 300


def test_every_file_is_read_right_or_refused_with_one_line() -> None:
    for case in CASES:
        got = read(case)  # any other exception fails the test here
        if isinstance(got, DataError):
            message = str(got)
            assert message.startswith(case.name) and "\n" not in message and "\r" not in message, (case.name, message)
            assert case.kind != "valid", (case.name, message)
            if case.line is not None:
                assert got.line == case.line, (case.name, message)
            continue
        assert case.kind != "broken", case.name
        assert np.all(np.isfinite(got.xyz)) and np.allclose(np.linalg.norm(got.xyz, axis=1), 1.0, atol=1e-12)
        assert np.all(np.diff(got.lines) > 0)
        if case.kind == "valid":
            np.testing.assert_allclose(got.xyz, case.xyz, atol=1e-12, err_msg=case.name)


def test_numbers_read_in_arrays_agree_with_float() -> None:
    """:func:`numbers` (arrays) against :data:`DECIMAL` and :func:`float`, one token at a time."""
    rng = random.Random(SEED)
    alphabet = "0123456789" * 3 + ".eE+- _xn"
    tokens = []
    for _ in range(20_000):
        if rng.random() < 0.5:
            tokens.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))))
        else:
            tokens.append(rng.choice([repr(rng.uniform(-1, 1) * 10.0 ** rng.randint(-300, 300)),
                                      f"{rng.uniform(-9, 9):.{rng.randint(0, 20)}f}e{rng.randint(-400, 400)}"]))
    data = "".join(tokens).encode()
    length = np.array([len(t) for t in tokens])
    end = np.cumsum(length)
    values, bad = numbers(data, np.frombuffer(data, dtype=np.uint8), end - length, end)
    for token, value, wrong in zip(tokens, values.tolist(), bad.tolist(), strict=True):
        ok = DECIMAL.fullmatch(token) is not None and math.isfinite(float(token))
        assert ok != wrong, token
        if ok:
            assert value == float(token), token


SAMPLE = [c for c in CASES[::40] if len(c.data) < 200_000][:30]


def _decision(got: PointSet | DataError) -> str:
    return "accept" if isinstance(got, PointSet) else "reject"


def test_the_cli_accepts_and_refuses_the_same_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cnfm_core import cli

    decisions = set()
    for i, case in enumerate(SAMPLE):
        path = tmp_path / case.name
        path.write_bytes(case.data)
        want = read(case)
        capsys.readouterr()
        rc = cli.main(["train", "--data", str(path), "--run-dir", str(tmp_path / f"run{i}"), "--steps", "1", "--quiet",
                       "--threads", "1", "--hidden", "8", "--layers", "1", "--split", "none", "--kappa-max", "10",
                       "--space-frequencies", "0"])
        err = capsys.readouterr().err
        decisions.add(_decision(want))
        if isinstance(want, PointSet):
            assert rc == 0, (case.name, err)
        else:
            assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, (case.name, err)
            assert err.startswith("cnfm: error: ") and want.problem in err, (case.name, err, str(want))
    assert decisions == {"accept", "reject"}


def test_two_files_through_the_cli_in_real_processes(tmp_path: Path) -> None:
    """The issue's reproducers: huge x, y, z rows train; decimal commas are refused with the row named."""
    big, commas = tmp_path / "big.csv", tmp_path / "commas.csv"
    big.write_text("x,y,z\n1e200,0,0\n0,1e200,0\n")
    commas.write_text("lat,lon\n12,5,45,3\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "CNFM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "cnfm_core", "train", "--data", str(path), "--run-dir",
                               str(tmp_path / path.stem), "--steps", "1", "--quiet", "--threads", "1", "--split",
                               "none"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for path in (big, commas)]
    (out_big, err_big), (_, err_commas) = (p.communicate(timeout=300) for p in procs)
    assert procs[0].returncode == 0 and '"state": "done"' in out_big, err_big
    assert procs[1].returncode == 2 and err_commas.count("\n") == 1, err_commas
    assert "commas.csv, line 2: too many fields" in err_commas and "decimal commas" in err_commas


@pytest.fixture
def upload_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CNFM_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CNFM_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("CNFM_DEMO_RUNS", "")
    return tmp_path


def test_the_upload_path_accepts_and_refuses_the_same_files(upload_env: Path) -> None:
    from dashboard import uploads

    for case in SAMPLE:
        want = read(case)
        try:
            got: PointSet | DataError = uploads.check(case.name, case.data)
        except DataError as err:
            got = err
        assert _decision(got) == _decision(want), case.name
        if isinstance(got, PointSet):
            np.testing.assert_array_equal(got.xyz, want.xyz)
        else:
            assert str(got) == str(want) and type(got) is type(want)


def test_the_data_page_accepts_and_refuses_the_same_files(upload_env: Path) -> None:
    from streamlit.testing.v1 import AppTest

    picked = [c for c in SAMPLE if isinstance(read(c), PointSet)][:2] + \
        [c for c in SAMPLE if isinstance(read(c), DataError)][:3]
    for case in picked:
        at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
        at.run()
        at.file_uploader(key="upload").set_value((case.name, case.data, "text/csv")).run()
        assert not at.exception, (case.name, at.exception)
        want = read(case)
        buttons = [b for b in at.button if b.key == "use_upload"]
        usable = bool(buttons) and not buttons[0].disabled
        assert usable == isinstance(want, PointSet), case.name
        if isinstance(want, ColumnError):
            assert at.info and not at.error, case.name  # the user may choose the columns instead
        elif isinstance(want, DataError):
            (error,) = at.error
            assert f"line {want.line}" in error.value if want.line else error.value, case.name
