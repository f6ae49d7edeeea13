"""URLs without credentials, before they are stored where every viewer can read them.

A URL someone pastes (``--source``, a remote artifact, a git remote, an
MLflow tag) often carries a secret: ``https://alice:TOKEN@host/...``, a
presigned ``?X-Amz-Signature=...``, an ``?access_token=...``. Everything
aletheia stores is readable by every viewer of the project, so the secret
parts are removed first; the rest (scheme, host, path, other parameters)
still says where the thing came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Schemes whose user name is often a token itself (``https://TOKEN@github.com``).
_USER_IS_SECRET = ("http", "https", "ftp", "ftps")
#: Query parameter names that carry credentials (matched anywhere in the name,
#: case-insensitively): OAuth/API tokens, keys, passwords, and the signatures
#: and credentials of presigned S3/GCS/Azure URLs (``X-Amz-Signature``, ``sig``).
_SECRET_PARAM = re.compile(
    r"token|key|secret|passw|pwd|sig|credential|auth|session|ticket|code", re.IGNORECASE
)
#: A URL inside free text: a scheme, ``://``, then anything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` without credentials.

    ``https://user:token@host/x?access_token=t&v=2`` → ``https://host/x?v=2``
    (for http(s) and ftp the user name is often a token too, so it goes
    entirely); ``ssh://git:secret@host/x`` keeps the user and loses the
    password; query parameters named like a credential go, the others stay.
    scp-like ``git@host:x`` (ssh takes no password there), plain paths and
    anything that does not parse are returned as they are.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if parts.scheme.lower() in _USER_IS_SECRET or not userinfo:
        netloc = hostport
    else:
        user = userinfo.partition(":")[0]
        netloc = f"{user}@{hostport}" if user else hostport
    query = parts.query
    if query:
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not _secret(k)]
        query = urlencode(kept)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secret(name: str) -> bool:
    return bool(_SECRET_PARAM.search(name))


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact_values(values: Mapping[str, str]) -> dict[str, str]:
    """A string map (MLflow tags) with the URLs in its values redacted."""
    return {k: redact_text(v) if isinstance(v, str) else v for k, v in values.items()}
