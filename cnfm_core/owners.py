"""Who may control a run on a shared server: its owner, the teacher, or (for some runs) everyone.

Everyone may view every run. Changing a run (stopping, resuming, stepping, deleting it, cancelling or
requesting its report or path frames) needs one of:

* its **owner**: the browser session that started it. A run started from a page gets a secret *control key*
  (:func:`new_key`); the run folder keeps only its SHA-256 in ``owner.json`` (:func:`write_owner`), which no
  page shows, and the session keeps the key (in its URL as ``?key=``, so a reload keeps it);
* the **teacher**: whoever gives the admin key of the server (``$CNFM_ADMIN_KEY``);
* **everyone**, for a run with no owner (started from the command line) on a server with no admin key
  (single-user mode, the default on a laptop). With an admin key such a run is the teacher's.

Bundled demo runs are read-only for all. :func:`decide` is the rule, a pure function; :data:`RULE` says it in
words for the pages. This module does not import torch.

>>> key = new_key()
>>> decide(demo=False, owner=key_hash(key), key=key, admin=False, admin_configured=True).allowed
True
>>> decide(demo=False, owner=key_hash(key), key=None, admin=False, admin_configured=False).allowed
False
>>> decide(demo=False, owner=None, key=None, admin=False, admin_configured=False).who
'everyone'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from .runs import atomic_write

__all__ = ["ADMIN_ENV", "OWNER_FILE", "RULE", "Access", "admin_matches", "decide", "key_hash", "new_key",
           "owner_of", "valid_key", "write_owner"]

#: The environment variable holding the teacher's admin key (unset or empty: single-user mode).
ADMIN_ENV = "CNFM_ADMIN_KEY"
#: The file in a run folder that names its owner by the hash of the control key.
OWNER_FILE = "owner.json"
#: The rule in one sentence, for the pages.
RULE = ("Everyone may view every run; stopping, resuming, stepping and deleting a run (and computing its report "
        "or path frames) is for the browser session that started it (its control link, with ?key=) and for the "
        "teacher (admin key); runs started from the command line are the teacher's, or everyone's when no admin "
        "key is set (single-user mode); demo runs are read-only.")
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


@dataclass(frozen=True)
class Access:
    """Whether a session may control a run: ``who`` it is to the run when allowed (``owner``, ``teacher``,
    ``everyone``), else ``reason``, one line that says why not."""

    allowed: bool
    who: str = ""
    reason: str = ""


def new_key() -> str:
    """A fresh secret control key (URL-safe, 192 bits)."""
    return secrets.token_urlsafe(24)


def valid_key(key: object) -> bool:
    """Whether ``key`` looks like a control key (it comes from a URL)."""
    return isinstance(key, str) and bool(_KEY.match(key))


def key_hash(key: str) -> str:
    """The SHA-256 of a control key, hex: what a run folder keeps instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def write_owner(run_path: str | Path, key: str) -> None:
    """Record that the holder of ``key`` owns the run in ``run_path`` (only the key's hash is written)."""
    data = {"key_sha256": key_hash(key), "created": time.time()}
    atomic_write(Path(run_path) / OWNER_FILE, (json.dumps(data) + "\n").encode())


def owner_of(run_path: str | Path) -> str | None:
    """The hash of the run's control key; None for a run without an owner (started from the command line), and
    ``""`` (owned, matched by no key: only the teacher may control it) when ``owner.json`` cannot be read."""
    path = Path(run_path) / OWNER_FILE
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text()).get("key_sha256")
    except (OSError, ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def admin_matches(given: object, configured: str | None) -> bool:
    """Whether ``given`` is the server's admin key (compared in constant time; never true without one)."""
    return bool(configured) and isinstance(given, str) and hmac.compare_digest(given.encode(), configured.encode())


def decide(*, demo: bool, owner: str | None, key: str | None, admin: bool, admin_configured: bool) -> Access:
    """The rule of the module doc: may a session holding ``key`` (and signed in as the teacher when ``admin``)
    control a run whose owner is ``owner`` (see :func:`owner_of`)?"""
    if demo:
        return Access(False, reason="a bundled demo run is read-only")
    if owner and valid_key(key) and hmac.compare_digest(key_hash(key), owner):
        return Access(True, "owner")
    if admin:
        return Access(True, "teacher")
    if owner is None and not admin_configured:
        return Access(True, "everyone")
    if owner is None:
        return Access(False, reason="this run was started from the command line, so only the teacher (admin key, "
                                    "on the Runs page) may change it")
    return Access(False, reason="this run was started by another browser session, so only that session (its "
                                "control link) or the teacher may change it")
