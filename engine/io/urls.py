"""Service URLs without their secrets: the one rule for the PACS and the shared database.

A URL written into a message, a log, a settings file or (for DICOMweb) handed to the HTTP
client must not carry a password. ``user:password@`` is taken out of the network location;
the user name can be kept where it identifies the account in a message (the database).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def safe_url(url: str, *, keep_user: bool = False) -> str:
    """``url`` without its password (and without its user name unless ``keep_user``),
    query or fragment: ``scheme://[user@]host[:port]/path``."""
    p = urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    user = f"{p.username}@" if keep_user and p.username else ""
    return urlunsplit((p.scheme, user + host, p.path, "", ""))


__all__ = ["safe_url"]
