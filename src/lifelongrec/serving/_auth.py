"""API keys with read and write scopes.

Where keys come from, first match wins:

1. the environment: ``LIFELONGREC_API_KEYS="KEY1:read,write;KEY2:read"`` (a key, a colon,
   its comma-separated scopes; entries separated by ``;``);
2. ``HOME/keys.json``: ``{"keys": [{"key": "...", "scopes": ["read", "write"], "name":
   "..."}]}``;
3. neither: on first start the service writes ``HOME/keys.json`` (mode 0600) with one
   read-write key and one read-only key and prints them.

A request sends its key as ``X-API-Key: KEY`` (or ``Authorization: Bearer KEY``). Read
endpoints (``GET``) need the ``read`` scope, changes (``POST``, ``PUT``, ``DELETE``)
``write``; ``/health``, ``/docs`` and ``/openapi.json`` need none. No key: 401; a key
without the scope: 403.

The dashboard (``/dashboard``) logs a person in with a read key pasted into its login
page and keeps it in an ``HttpOnly``, ``SameSite=Strict`` cookie (:data:`KEY_COOKIE`). The
cookie counts for reads only (``GET``, ``HEAD``, ``OPTIONS``): a change always needs the
key in a header, which a page sends only when a person types a write key into it, so a
page of another site cannot make a browser change anything (no CSRF).

For development on your own machine, ``lifelongrec serve --open`` (or ``KeyRing.open()``)
turns the checks off; the service refuses ``--open`` on an address other than loopback.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from lifelongrec._errors import DataError

__all__ = [
    "SCOPES",
    "KeyRing",
    "ENV_KEYS",
    "KEYS_FILE",
    "KEY_COOKIE",
    "cookie_key",
    "cookie_value",
    "key_problem",
    "request_key",
]

SCOPES = ("read", "write")
ENV_KEYS = "LIFELONGREC_API_KEYS"
KEYS_FILE = "keys.json"
#: The cookie the dashboard's login stores a read key in (accepted for reads only).
KEY_COOKIE = "lifelongrec_key"


@dataclass(frozen=True)
class _Key:
    key: str
    scopes: frozenset[str]
    name: str = ""


def _check_key(key: Any, scopes: Iterable[Any], where: str) -> _Key:
    if not isinstance(key, str) or len(key) < 8 or any(c.isspace() for c in key):
        raise DataError(
            "an API key is too short or has spaces",
            path=where,
            value="<hidden>",
            expected="a string of at least 8 characters without spaces",
        )
    scopes = list(scopes)
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise DataError(
            "unknown or missing key scope",
            path=where,
            value=bad or scopes,
            expected=f"one or more of {list(SCOPES)}",
        )
    return _Key(key, frozenset(scopes))


class KeyRing:
    """The accepted API keys and their scopes (``open=True``: no checks)."""

    def __init__(self, keys: Iterable[_Key] = (), open: bool = False) -> None:
        self._keys = list(keys)
        self.is_open = bool(open)
        self.source = ""
        self.created = False

    @classmethod
    def open_access(cls) -> KeyRing:
        """No key checks (development on localhost only)."""
        ring = cls(open=True)
        ring.source = "open (no keys checked)"
        return ring

    @classmethod
    def from_env(cls, value: str) -> KeyRing:
        keys = []
        for j, entry in enumerate(e for e in value.split(";") if e.strip()):
            key, sep, scopes = entry.strip().partition(":")
            where = f"${ENV_KEYS} entry {j + 1}"
            if not sep:
                raise DataError(
                    "an API key entry has no scopes",
                    path=where,
                    value="<hidden>",
                    expected="KEY:read or KEY:read,write",
                )
            keys.append(_check_key(key, [s.strip() for s in scopes.split(",")], where))
        if not keys:
            raise DataError(f"${ENV_KEYS} is set but holds no key", expected="KEY:scopes")
        ring = cls(keys)
        ring.source = f"${ENV_KEYS}"
        return ring

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(
                "not valid JSON", path=path, line=exc.lineno, expected='{"keys": [...]}'
            ) from None
        entries = doc.get("keys") if isinstance(doc, Mapping) else None
        if not isinstance(entries, list) or not entries:
            raise DataError(
                "no keys", path=path, expected='{"keys": [{"key": ..., "scopes": [...]}]}'
            )
        keys = []
        for j, e in enumerate(entries):
            where = f"{path} keys[{j}]"
            if not isinstance(e, Mapping):
                raise DataError("a key entry is not an object", path=where, value=e)
            k = _check_key(e.get("key"), e.get("scopes") or [], where)
            keys.append(_Key(k.key, k.scopes, str(e.get("name", ""))))
        ring = cls(keys)
        ring.source = str(path)
        return ring

    @classmethod
    def for_home(cls, home: Path, environ: Mapping[str, str] | None = None) -> KeyRing:
        """The keys of a home folder (see the module docstring); creates keys.json with
        fresh keys when there are none (``created`` is then True)."""
        env = os.environ if environ is None else environ
        if env.get(ENV_KEYS):
            return cls.from_env(env[ENV_KEYS])
        path = home / KEYS_FILE
        if path.exists():
            return cls.from_file(path)
        keys = [
            _Key(secrets.token_urlsafe(24), frozenset(SCOPES), "admin"),
            _Key(secrets.token_urlsafe(24), frozenset({"read"}), "read-only"),
        ]
        doc = {"keys": [{"key": k.key, "scopes": sorted(k.scopes), "name": k.name} for k in keys]}
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        ring = cls(keys)
        ring.source = f"{path} (created)"
        ring.created = True
        return ring

    def keys(self) -> list[dict[str, Any]]:
        """The keys with their scopes and names (to print once on first start)."""
        return [{"key": k.key, "scopes": sorted(k.scopes), "name": k.name} for k in self._keys]

    def scopes_of(self, key: str | None) -> frozenset[str] | None:
        """The scopes of ``key``; ``None`` when it is not a known key. Constant-time
        comparison against every key."""
        if key is None:
            return None
        found = None
        for k in self._keys:
            if hmac.compare_digest(k.key.encode(), key.encode()):
                found = k.scopes
        return found


def request_key(headers: Any) -> str | None:
    """The API key a request sends (``X-API-Key`` or ``Authorization: Bearer``)."""
    key = headers.get("x-api-key")
    if key is not None:
        return key
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def cookie_key(headers: Any) -> str | None:
    """The key in the dashboard's cookie (:data:`KEY_COOKIE`), or ``None``. Only for
    reads (``GET``, ``HEAD``, ``OPTIONS``): the caller checks the method. The value is
    percent-encoded (:func:`cookie_value`): a key may hold characters a cookie cannot."""
    raw = headers.get("cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == KEY_COOKIE and value:
            return unquote(value)
    return None


def cookie_value(key: str) -> str:
    """``key`` as the value of :data:`KEY_COOKIE` (percent-encoded)."""
    return quote(key, safe="")


def key_problem(keys: KeyRing, given: str | None, need: str) -> tuple[int, str] | None:
    """``None`` when ``given`` is a key with scope ``need``; else ``(status, detail)``."""
    scopes = keys.scopes_of(given)
    if scopes is None:
        return 401, (
            "missing or unknown API key: send it as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'"
        )
    if need not in scopes:
        return 403, (
            f"this API key lacks the '{need}' scope needed here "
            f"(it has: {', '.join(sorted(scopes))})"
        )
    return None
