"""Uploaded point files: read by the one reader (:func:`cnfm_core.data.parse_clean`, as the CLI reads a file), kept
under the run store's ``uploads`` folder as the clean CSV that reader wrote (header ``lat,lon`` or ``x,y,z``, the
numbers as written, so the reader reads it back to the same points and it is never over the size limit), and
deleted from the Data page.

An upload is parsed once per file and choice of columns: the last one parsed is kept in this process (the Data
page reruns on every click), and the points of the file last kept are handed to the page that shows them.
Every session sees every upload; deleting one is for the session that uploaded it and the teacher.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from cnfm_core.data import CleanPoints, DataError, PointSet, parse_clean
from cnfm_core.runs import atomic_write
from dashboard import access, state

__all__ = ["check", "check_size", "delete", "limit_bytes", "recent", "save_upload", "why_not_delete"]

_lock = threading.Lock()
#: The last upload parsed: (digest, name, lat_col, lon_col) -> its points and clean CSV, or its error.
_parsed: dict[tuple[str, str, str | None, str | None], CleanPoints | DataError] = {}
#: The points of the file last kept: path -> (mtime_ns, size, points).
_kept: dict[str, tuple[int, int, PointSet]] = {}


def limit_bytes() -> int:
    """The largest upload accepted, in bytes (``CNFM_MAX_UPLOAD_MB``)."""
    return state.settings().max_upload_mb * 1024 * 1024


def check_size(name: str, data: bytes) -> None:
    """Raise :class:`DataError` if an upload is over the limit (before anything reads it)."""
    if len(data) > limit_bytes():
        raise DataError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {state.settings().max_upload_mb} MB",
                        source=name)


def _clean(name: str, data: bytes, lat_col: str | None, lon_col: str | None) -> CleanPoints:
    check_size(name, data)
    key = (hashlib.sha256(data).hexdigest(), name, lat_col, lon_col)
    with _lock:
        found = _parsed.get(key)
    if found is None:
        try:
            found = parse_clean(data, source=name, lat_col=lat_col, lon_col=lon_col, max_bytes=limit_bytes())
        except DataError as err:
            found = err
        with _lock:
            _parsed.clear()  # one at a time: the points of a 50 MB file take about 400 MB
            _parsed[key] = found
    if isinstance(found, DataError):
        raise found
    return found


def check(name: str, data: bytes, lat_col: str | None = None, lon_col: str | None = None) -> PointSet:
    """The points of an upload as the reader reads them (columns found from the header, or ``lat_col``/``lon_col``);
    raises :class:`DataError` (a :class:`cnfm_core.data.ColumnError` where the user may choose the columns)."""
    return _clean(name, data, lat_col, lon_col).points


def save_upload(name: str, data: bytes, lat_col: str | None = None,
                lon_col: str | None = None) -> tuple[state.Dataset, PointSet]:
    """Validate an upload and keep it (its clean CSV) under the run store's uploads folder; select it.

    Raises DataError for a bad file; nothing is written then, and the current choice stays.
    """
    clean = _clean(name, data, lat_col, lon_col)
    if len(clean.csv) > limit_bytes():  # at most 8 bytes over the upload, so only a file at the limit
        raise DataError("the file is at the size limit, and its clean copy would be over it; remove a row",
                        source=name)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name).stem).strip("-")[:40] or "upload"
    folder = state.settings().uploads
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{stem}-{hashlib.sha256(clean.csv).hexdigest()[:8]}.csv"
    if not out.exists():
        atomic_write(out, clean.csv)
    info = out.stat()
    # The kept file is one header line and a row a line: the reader gives it these lines.
    points = PointSet(clean.points.xyz, np.arange(2, clean.points.n + 2, dtype=np.int64), out.name)
    with _lock:
        _kept.clear()
        _kept[str(out)] = (info.st_mtime_ns, info.st_size, points)
    ds = state.Dataset(f"upload:{out.stem}", f"{out.stem} (uploaded)", out, "upload")
    st.session_state["my_uploads"] = {*(st.session_state.get("my_uploads") or ()), out.name}
    state.select_dataset(ds.key)
    return ds, points


def why_not_delete(ds: state.Dataset) -> str | None:
    """Why this session may not delete the uploaded set ``ds`` (None: it may). As with runs (``cnfm_core/owners.py``),
    the session that uploaded it and the teacher may; everyone may on a server without an admin key."""
    if ds.path.name in (st.session_state.get("my_uploads") or ()) or access.is_admin():
        return None
    if not access.admin_configured():
        return None
    return "only the session that uploaded it and the teacher may delete it"


def recent(ds: state.Dataset) -> PointSet | None:
    """The points of ``ds`` if it is the upload just kept and its file is unchanged (else None: read the file)."""
    with _lock:
        kept = _kept.get(str(ds.path))
    try:
        info = ds.path.stat()
    except OSError:
        return None
    return kept[2] if kept and kept[:2] == (info.st_mtime_ns, info.st_size) else None


def delete(ds: state.Dataset) -> None:
    """Delete an uploaded data set's file and select the first data set left. Runs trained on it keep their own
    copy of its points (their splits), so their pages still show them. Refused (``PermissionError``) for a
    session that may not (:func:`why_not_delete`)."""
    folder = state.settings().uploads.resolve()
    if ds.kind != "upload" or ds.path.resolve().parent != folder:
        raise ValueError(f"{ds.key} is not an uploaded data set")
    why = why_not_delete(ds)
    if why:
        raise PermissionError(why)
    ds.path.unlink(missing_ok=True)
    with _lock:
        _kept.pop(str(ds.path), None)
    state.select_dataset(next(iter(state.datasets()), "synthetic"))
