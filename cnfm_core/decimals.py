"""Decimal numbers read from byte spans of a buffer in arrays, exactly as :func:`float` reads them.

A number is ASCII decimal: a sign, digits with at most one ``.``, an exponent (``1e-3``); no spaces, underscores,
NaN or infinity. Spans of up to 24 bytes are read as the rows of a matrix, digit by digit: exactly where the digits
fit 53 bits and the power of ten is at most 22 (one correctly rounded multiplication or division); the few others
go through :func:`float`. ``tests/test_reader_fuzz.py`` checks the arrays against :func:`float` and
:data:`DECIMAL`.

>>> data = b"12.5-3e2x1.e1"
>>> values, bad = numbers(data, np.frombuffer(data, dtype=np.uint8), np.array([0, 4, 8, 9]), np.array([4, 8, 9, 13]))
>>> values.tolist(), bad.tolist()
([12.5, -300.0, 0.0, 10.0], [False, False, True, False])
"""

from __future__ import annotations

import math
import re

import numpy as np

__all__ = ["DECIMAL", "numbers"]

#: The grammar of a number (possessive, so a long run of digits cannot make it backtrack).
DECIMAL = re.compile(r"[+-]?(?:\d++(?:\.\d*+)?|\.\d++)(?:[eE][+-]?\d++)?", re.ASCII)
_SHORT = 24
_POW10_INT = 10 ** np.arange(19, dtype=np.int64)
_POW10 = np.array([10.0**k for k in range(23)])


def numbers(data: bytes, c: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decimal numbers in the byte spans ``[a, b)`` of ``c`` (``data`` as bytes): values, and a mask of the spans
    that are not numbers (empty, not the grammar of the module docstring, or beyond float64).

    Spans of up to 24 bytes are read as rows of a matrix, digit by digit: exactly (as :func:`float` reads them)
    where the digits fit 53 bits and the power of ten is at most 22; the others go through :func:`float`.
    """
    n = len(a)
    ln = b - a
    values, bad = np.zeros(n), ln <= 0
    short = np.flatnonzero((ln > 0) & (ln <= _SHORT))
    if len(short):
        w = int(ln[short].max())
        col = np.arange(w)
        at = np.minimum(a[short, None] + col, len(c) - 1)
        ch = np.where(col < ln[short, None], c[at], 0)
        digits = ch - np.uint8(48)
        digit = digits < 10
        dot, e, minus = ch == 46, (ch | 32) == 101, ch == 45
        sign = minus | (ch == 43)
        wrong = ~(digit | dot | sign | (ch == 0))
        if sign[:, 1:].any():
            wrong[:, 1:] |= sign[:, 1:] & ~e[:, :-1]
        if e.any():  # exponents: rare, so the arrays for them are made only when there are some
            wrong &= ~e
            in_exp = np.cumsum(e, axis=1, dtype=np.int8) > 0
            mant, expo = digit & ~in_exp, digit & in_exp
            n_e, n_x = e.sum(1), expo.sum(1)
            x_val = np.where(expo, digits * _POW10_INT[np.clip(n_x[:, None] - np.cumsum(expo, axis=1), 0, 18)],
                             0).sum(1)
            x_val = np.where((in_exp & minus).any(1), -x_val, x_val)
            invalid = (n_e > 1) | (dot & in_exp).any(1) | ((n_e == 1) & (n_x == 0))
            mdot = dot & ~in_exp
        else:
            mant, n_x, x_val, invalid, mdot = digit, 0, 0, False, dot
        n_m = mant.sum(1)
        invalid = invalid | wrong.any(1) | (mdot.sum(1) > 1) | (n_m == 0)
        weights = _POW10_INT[np.clip(n_m[:, None] - np.cumsum(mant, axis=1, dtype=np.int8), 0, 18)]
        m_val = np.where(mant, digits * weights, 0).sum(1)
        frac = (mant & (np.cumsum(mdot, axis=1, dtype=np.int8) > 0)).sum(1) if mdot.any() else 0
        exp10 = x_val - frac
        k = np.clip(np.abs(exp10), 0, 22)
        v = np.where(exp10 >= 0, m_val * _POW10[k], m_val / _POW10[k])
        values[short] = np.where(minus[:, 0], -v, v)
        bad[short] = invalid
        slow = short[~invalid & ((n_m > 18) | (n_x > 4) | (m_val >= 2**53) | (np.abs(exp10) > 22))]
    else:
        slow = short
    for i in np.r_[slow, np.flatnonzero(ln > _SHORT)].astype(np.int64).tolist():
        token = data[a[i]:b[i]]
        if ln[i] > _SHORT and not DECIMAL.fullmatch(token.decode("ascii", "replace")):
            bad[i] = True
            continue
        values[i] = float(token)
        bad[i] = not math.isfinite(values[i])
    return values, bad
