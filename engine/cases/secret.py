"""Per-installation secret for keyed pseudonyms (HMAC-SHA-256).

An unsalted hash of a 7-digit MRN is reversed by enumerating the 10**7 candidates in seconds;
a keyed HMAC is not, as long as the key stays on this machine. The key is 32 random bytes in
``<config dir>/pseudonym.key`` (``$BREAST_READER_CONFIG`` overrides the folder; default
``$XDG_CONFIG_HOME/breast-reader`` or ``~/.config/breast-reader``, ``%APPDATA%`` on Windows),
created once with mode 0600 (``O_EXCL``: two processes starting together end with one key).
The same patient keeps the same pseudonym on one installation; another installation (or a
deleted key) gives different pseudonyms, which is the point.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["config_dir", "installation_key", "keyed_pseudonym"]

KEY_FILE = "pseudonym.key"


def config_dir() -> Path:
    """The per-user configuration folder of breast-reader (not created)."""
    env = os.environ.get("BREAST_READER_CONFIG")
    if env:
        return Path(env)
    if os.name == "nt" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "breast-reader"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "breast-reader"


def installation_key() -> bytes:
    """The 32-byte key, created on first use (mode 0600)."""
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
            fh.flush()
            os.fsync(fh.fileno())
    for _ in range(50):  # a concurrent creator may not have written it yet
        key = path.read_bytes()
        if len(key) >= 32:
            return key[:32]
        import time

        time.sleep(0.02)
    raise OSError(f"{path}: the pseudonym key is damaged (delete it to make a new one)")


def keyed_pseudonym(*parts: str | None, length: int = 12) -> str:
    """HMAC-SHA-256 of the identifier parts under the installation key, hex, ``length`` chars."""
    msg = "\x1f".join(p or "" for p in parts).encode()
    return hmac.new(installation_key(), msg, hashlib.sha256).hexdigest()[:length]


def _unkeyed(*parts: str | None) -> str:  # the old scheme, kept only for the enumeration test
    return hashlib.sha256("|".join(p or "" for p in parts).encode()).hexdigest()[:10]
