"""CSV text in bulk: decoding, the header, and the numeric columns of a file, read with numpy on the whole buffer.

No Python loop runs over rows: the bytes are scanned in windows of about 1 MB for quotes, delimiters and line
breaks, and the numbers of the chosen columns are read by :func:`cnfm_core.decimals.numbers`. The rules:

* UTF-8 text, with or without a byte-order mark; a NUL byte means a binary file;
* LF, CRLF or CR line breaks; a line of only spaces and tabs is blank and skipped (it counts in line numbers);
* the first non-blank line is the header; the delimiter is ``,``, ``;`` or a tab, whichever occurs most in it;
* every row has exactly as many fields as the header;
* a field may be enclosed in double quotes, spaces around them aside (inside them ``""`` is one quote, and
  delimiters and line breaks are text); a quote anywhere else is an error;
* a number is ASCII decimal: a sign, digits with at most one ``.``, an exponent (``1e-3``); spaces around it are
  ignored. NaN, infinity and values beyond float64 (``1e999``) are errors.

Every problem is a :class:`cnfm_core.textfile.DataError` whose one-line message names the source, the line and the
problem, with any text from the file in quotes and escaped (``repr``), so it reads as plain text.

>>> t = read_table("a;b\\n1;2\\n\\n3;4\\n", "f.csv")
>>> t.names, t.delimiter, t.numbers([0, 1]).values.tolist(), t.numbers([0, 1]).lines.tolist()
(('a', 'b'), ';', [[1.0, 2.0], [3.0, 4.0]], [2, 4])
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice

import numpy as np

from cnfm_core.decimals import DECIMAL, numbers
from cnfm_core.textfile import DataError, check_size, decode, read_file, shown

__all__ = ["Columns", "DataError", "Table", "check_size", "decode", "read_file", "read_table", "shown"]

_WINDOW = 1024 * 1024
#: Windows read at the same time.
_THREADS = max(1, min(4, os.cpu_count() or 1))
_DELIMITERS = (",", ";", "\t")
_QUOTE, _LF, _CR = 34, 10, 13
#: Bytes that are space inside a row: space, tab, vertical tab, form feed, and the CR of a CRLF.
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 11, 12, 13, 32]] = True
_NONBLANK = re.compile(rb"[^ \t\v\f\r\n]")
Check = Callable[[np.ndarray], "tuple[int, str] | None"]
Convert = Callable[[np.ndarray], np.ndarray]
#: Bytes stripped around a field: spaces, and line breaks (they can be inside quotes).
_BLANK = _SPACE.copy()
_BLANK[[10, 13]] = True
_NOT_FINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)


@dataclass(frozen=True)
class Columns:
    """Numbers read from some columns: ``values`` ``(n, k)`` float64, ``lines[i]``, the 1-based line where row ``i``
    starts, and (when asked for) ``text``: those columns' fields as written, one row a line, joined by ``,``."""

    values: np.ndarray
    lines: np.ndarray
    text: bytes | None = None


@dataclass(frozen=True)
class _Rows:
    """The non-blank rows of one window: byte offsets (in the whole buffer) of each row's start and end, the
    offsets of the delimiters of all rows in order, fields per row, and the line where each row starts."""

    start: np.ndarray
    end: np.ndarray
    delims: np.ndarray
    fields: np.ndarray
    lines: np.ndarray
    breaks: int  # line breaks in the window


class Table:
    """A CSV file's header, found and checked; :meth:`numbers` reads columns of its rows.

    ``names`` are the header's fields (quotes removed, spaces stripped), ``line`` the header's line, ``span`` its
    bytes ``(start, end)`` in ``data`` (the end is its line break).
    """

    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.source = data, source
        self._buf = np.frombuffer(data, dtype=np.uint8)
        bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        first = _NONBLANK.search(data, bom)
        if first is None:
            raise DataError("the file is empty", source=source)
        start = max(data.rfind(b"\n", 0, first.start()), data.rfind(b"\r", 0, first.start()), bom - 1) + 1
        end = min(i for i in (data.find(b"\n", start), data.find(b"\r", start), len(data)) if i >= 0)
        self.delimiter = max(_DELIMITERS, key=lambda d: data.count(d.encode(), start, end))
        self._delim = ord(self.delimiter)
        self._body, rows = self._window(start, self._breaks(0, start) + 1, header=True)
        self._body_line = self._breaks(0, self._body) + 1
        self.line = int(rows.lines[0])
        self.span = (int(rows.start[0]), int(rows.end[0]))
        edges = np.r_[rows.start[0] - 1, rows.delims, rows.end[0]]
        self.names = tuple(self._text(a + 1, b).strip() for a, b in zip(edges[:-1], edges[1:], strict=True))

    def _breaks(self, lo: int, hi: int) -> int:
        """Line breaks in ``data[lo:hi]``."""
        d = self.data
        return d.count(b"\n", lo, hi) + d.count(b"\r", lo, hi) - d.count(b"\r\n", lo, hi)

    def _window(self, lo: int, line0: int, *, header: bool = False, size: int = _WINDOW) -> tuple[int, _Rows]:
        """The rows from byte ``lo`` (on line ``line0``) to a line break about ``size`` bytes on (the header row
        alone if ``header``): the offset after them, and the non-blank rows."""
        n = len(self._buf)
        while True:
            hi = min(lo + size, n)
            c = self._buf[lo:hi]
            brk = c == _LF
            cr = c == _CR
            if cr.any():
                before_lf = np.zeros(len(c), dtype=bool)
                nxt = self._buf[lo + 1:hi + 1]
                before_lf[: len(nxt)] = nxt == _LF
                brk |= cr & ~before_lf
            quote = c == _QUOTE
            inside = np.bitwise_xor.accumulate(quote.view(np.uint8)).view(bool) if quote.any() else None
            breaks = np.flatnonzero(brk if inside is None else brk & ~inside)
            if header:  # the header row ends at the first break after its first non-space byte
                filled = np.flatnonzero(~_SPACE[c] & ~brk)
                breaks = breaks[breaks > filled[0]][:1] if len(filled) else breaks[:0]
            if len(breaks) or hi == n:
                break
            size *= 2
        at_end = not (len(breaks) and (header or hi < n))
        cut = len(c) if at_end else int(breaks[-1]) + 1
        ends = np.r_[breaks, cut] if at_end else breaks
        c, brk = c[:cut], brk[:cut]
        delim = c == self._delim
        if inside is not None:
            inside, quote = inside[:cut], quote[:cut]
            delim &= ~inside
            self._check_quotes(c, quote, inside, delim, brk, lo, line0)
            if at_end and inside[-1]:
                opening = int(np.flatnonzero(quote & inside & ~np.r_[False, inside[:-1]])[-1])
                raise DataError('a quote (") opens a field that is never closed', source=self.source,
                                line=line0 + self._breaks(lo, lo + opening))
        starts = np.r_[0, ends[:-1] + 1]
        filled = (starts < ends) & ~_BLANK[c[np.minimum(starts, cut - 1)]]  # most rows start with a non-space
        if not filled.all():
            filled = _count(~_SPACE[c] & ~brk, starts, ends) > 0
        if header:
            filled &= np.cumsum(filled) == 1
        per_row = _count(delim, starts, ends)
        delims = np.flatnonzero(delim)
        if not filled.all():  # blank rows of tabs in a tab-separated file
            delims = delims[np.repeat(filled, per_row)]
        starts, ends, per_row = starts[filled], ends[filled], per_row[filled]
        if inside is None and header is False:
            lines = line0 + np.flatnonzero(filled)
        else:
            lines = line0 + np.searchsorted(np.flatnonzero(brk), starts)
        return lo + cut, _Rows(starts + lo, ends + lo, delims + lo, per_row + 1, lines, int(np.count_nonzero(brk)))

    def _check_quotes(self, c: np.ndarray, quote: np.ndarray, inside: np.ndarray, delim: np.ndarray,
                      brk: np.ndarray, lo: int, line0: int) -> None:
        """A quote must open a field (after a delimiter or a line break, spaces aside) or close one (before them);
        ``""`` inside quotes is one quote."""
        q = np.flatnonzero(quote)
        edge = delim | brk
        solid = np.flatnonzero(~_SPACE[c] | edge)  # where the neighbours of a quote are found, spaces skipped
        i = np.searchsorted(solid, q)
        prev = solid[np.maximum(i - 1, 0)]
        nxt = solid[np.minimum(i + 1, len(solid) - 1)]
        opening = inside[q]
        ok = np.where(opening, (i == 0) | edge[prev] | ((prev == q - 1) & quote[prev] & ~inside[prev]),
                      (i + 1 >= len(solid)) | edge[nxt] | ((nxt == q + 1) & quote[nxt] & inside[nxt]))
        if not ok.all():
            at = int(q[np.argmin(ok)])
            raise DataError('a quote (") inside a field; enclose the whole field in quotes, and write a quote '
                            'inside quotes as ""', source=self.source, line=line0 + self._breaks(lo, lo + at))

    def _text(self, a: int, b: int) -> str:
        """A field's text: spaces around it and its enclosing quotes removed."""
        s = self.data[a:b].decode("utf-8", "replace").strip(" \t\v\f\r")
        if len(s) >= 2 and s[0] == s[-1] == '"':
            s = s[1:-1].replace('""', '"')
        return s

    def _windows(self) -> Iterator[Callable[[], _Rows]]:
        """The body's windows in order, each to be scanned by calling it. Without quotes or CRs the windows are cut
        at line breaks in advance (so they can be scanned at the same time); else one after the other."""
        d, n = self.data, len(self.data)
        lo, line0 = self._body, self._body_line
        if d.find(b'"', lo) < 0 and d.find(b"\r", lo) < 0:
            while lo < n:
                hi = d.find(b"\n", min(lo + _WINDOW, n - 1)) + 1 or n
                yield partial(lambda lo, line0, size: self._window(lo, line0, size=size)[1], lo, line0, hi - lo)
                line0 += d.count(b"\n", lo, hi)
                lo = hi
            return
        while lo < n:
            try:
                lo, rows = self._window(lo, line0)
            except DataError as err:
                yield partial(_raise, err)
                return
            line0 += rows.breaks
            yield partial(_scanned, rows)

    def numbers(self, cols: list[int], *, check: Check | None = None, convert: Convert | None = None,
                width: int | None = None, text: bool = False) -> Columns:
        """The numbers in columns ``cols`` of every row, each row with exactly as many fields as the header.

        ``check(values)`` may return ``(i, problem)`` for the first bad row ``i`` of a window; the first problem in
        the file, in row order, is raised. ``convert(values)`` turns a window's ``(n, len(cols))`` values into
        ``(n, width)`` ones, written straight into the result (so the raw values are never all held at once).
        ``text``: also the fields of ``cols`` as written (spaces and quotes removed), a row a line. Windows are
        read by a few threads at a time (numpy works outside the GIL); results are taken in file order."""
        width = width or len(cols)
        upper = self._breaks(self._body, len(self.data)) + 1
        out, lines = np.empty((upper, width)), np.empty(upper, dtype=np.int64)
        done, pieces = 0, []
        work = partial(self._read_window, cols=cols, check=check, convert=convert, text=text)
        windows = self._windows()
        with ThreadPoolExecutor(_THREADS) as pool:
            while batch := list(islice(windows, 2 * _THREADS)):
                for values, rows_lines, piece in pool.map(work, batch):
                    out[done:done + len(values)] = values
                    lines[done:done + len(values)] = rows_lines
                    done += len(values)
                    pieces.append(piece)
        return Columns(out[:done], lines[:done], b"".join(pieces) if text else None)

    def _read_window(self, window: Callable[[], _Rows], *, cols: list[int], check: Check | None,
                     convert: Convert | None, text: bool) -> tuple[np.ndarray, np.ndarray, bytes]:
        """One window's converted values, lines and text (:meth:`numbers`); its first problem is raised."""
        rows, m = window(), len(self.names)
        wrong = np.flatnonzero(rows.fields != m)
        first = int(wrong[0]) if len(wrong) else len(rows.start)
        edges = np.empty((first, m + 1), dtype=np.int64)
        edges[:, 0], edges[:, -1] = rows.start[:first] - 1, rows.end[:first]
        edges[:, 1:-1] = rows.delims[: first * (m - 1)].reshape(first, m - 1)
        values = np.empty((first, len(cols)))
        bad_at, problem, spans = first, None, []
        for k, j in enumerate(cols):
            a, b = edges[:, j] + 1, edges[:, j + 1]
            values[:, k], bad, span = self._column(a, b)
            spans.append(span)
            i = int(np.argmax(bad)) if bad.any() else first
            if i < bad_at:
                bad_at, problem = i, self._token_problem(int(a[i]), int(b[i]), self.names[j])
        if check is not None and bad_at > 0:
            found = check(values[:bad_at])
            if found is not None:
                bad_at, problem = found
        if problem is None and first < len(rows.start):
            problem = self._count_problem(rows, first)
        if problem is not None:
            raise DataError(problem, source=self.source, line=int(rows.lines[bad_at]))
        return (values if convert is None else convert(values)), rows.lines, self._joined(spans) if text else b""

    def _joined(self, spans: list[tuple[np.ndarray, np.ndarray]]) -> bytes:
        """The byte spans of each row's fields joined by ``,``, each row ended by a line break."""
        starts = np.stack([a for a, _ in spans], axis=1).ravel()
        lengths = np.stack([b - a for a, b in spans], axis=1).ravel()
        ends = np.cumsum(lengths + 1)  # each field is followed by a separator
        out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint8)
        offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[np.repeat(ends - lengths - 1, lengths) + offset] = self._buf[np.repeat(starts, lengths) + offset]
        out[ends - 1] = np.tile(np.r_[np.full(len(spans) - 1, ord(",")), _LF].astype(np.uint8), len(spans[0][0]))
        return out.tobytes()

    def _count_problem(self, rows: _Rows, i: int) -> str:
        m, found = len(self.names), int(rows.fields[i])
        header = ", ".join(shown(n) for n in self.names)
        problem = f"too {'few' if found < m else 'many'} fields: {found} fields, but the header names {m} columns " \
                  f"({header})"
        fields = self.data[int(rows.start[i]):int(rows.end[i])].decode("utf-8", "replace").split(self.delimiter)
        if found > m and self.delimiter == "," and all(re.fullmatch(r"\s*[+-]?\d+\s*", f) for f in fields):
            problem += "; decimal commas? Write 12.5 with a point, or separate the columns with ';'"
        return problem

    def _token_problem(self, a: int, b: int, name: str) -> str:
        s = self._text(a, b).strip(" \t\v\f\r\n")
        column = f"column {shown(name) if name else '(unnamed)'}"
        if not s:
            return f"{column} is empty"
        if _NOT_FINITE.fullmatch(s):
            return f"{column}: {shown(s)} is not finite (NaN or infinity)"
        if not DECIMAL.fullmatch(s):
            return f"{column}: {shown(s)} is not a number"
        return f"{column}: {shown(s)} is beyond the range of a float64 (about 1.8e308)"

    def _column(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Values of the fields ``[a, b)``, which are not numbers (empty, not decimal, or beyond float64), and the
        spans of the numbers (spaces and quotes removed)."""
        c = self._buf
        a, b = self._strip(a, b)
        quoted = (b - a >= 2) & (c[np.minimum(a, len(c) - 1)] == _QUOTE) & (c[b - 1] == _QUOTE)
        if quoted.any():
            a, b = self._strip(a + quoted, b - quoted)
        return *numbers(self.data, c, a, b), (a, b)

    def _strip(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The spans ``[a, b)`` without spaces (or line breaks, inside quotes) at either end: a few bytes at a time
        in arrays (``1, 2`` has one), then the few fields with more, one by one."""
        c = self._buf
        a, b = a.copy(), b.copy()
        for _ in range(4):
            head = np.flatnonzero((b > a) & _BLANK[c[np.minimum(a, len(c) - 1)]])
            tail = np.flatnonzero((b > a) & _BLANK[c[b - 1]])
            if not len(head) and not len(tail):
                return a, b
            a[head] += 1
            b[tail] -= 1
            b = np.maximum(a, b)
        for i in np.flatnonzero((b > a) & (_BLANK[c[np.minimum(a, len(c) - 1)]] | _BLANK[c[b - 1]])).tolist():
            s = self.data[a[i]:b[i]]
            a[i] += len(s) - len(s.lstrip(b" \t\v\f\r\n"))
            b[i] = max(a[i], b[i] - (len(s) - len(s.rstrip(b" \t\v\f\r\n"))))
        return a, b


def _raise(err: DataError) -> _Rows:
    raise err


def _scanned(rows: _Rows) -> _Rows:
    return rows


def _count(mask: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many of ``mask`` lie in each ``[starts, ends)``."""
    cum = np.r_[0, np.cumsum(mask, dtype=np.int64)]
    return cum[ends] - cum[starts]


def read_table(data: bytes | str, source: str) -> Table:
    """The header of CSV text or UTF-8 bytes (decoded and checked first: see :func:`decode`)."""
    text = decode(data, source)
    if isinstance(data, str):
        data = text.encode("utf-8", "surrogatepass")
    del text
    return Table(data, source)
