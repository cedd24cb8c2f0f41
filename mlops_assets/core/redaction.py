"""Secrets never leave in text: credentials inside URIs and storage options are masked.

Use ``redact(text, secrets)`` on any message that may quote a URI or a configuration value
(exception text from MLflow or deltalake, log lines, alert reasons, metadata). It masks the
``user:password@`` part of every URI and each known secret value (e.g. the values of the
storage options), whatever the surrounding text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "***"
_URI_CREDENTIALS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@:]+(?::[^/\s@]*)?)@"
)
SECRET_KEY_HINTS = ("secret", "password", "token", "key", "credential", "session")


def secret_values(options: Mapping[str, str] | None) -> list[str]:
    """The values of configuration entries whose names look secret (access keys, tokens, passwords)."""
    return [
        str(v)
        for k, v in (options or {}).items()
        if v and any(h in k.lower() for h in SECRET_KEY_HINTS) and len(str(v)) >= 4
    ]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URI credentials and every known secret value replaced by ``***``."""
    out = _URI_CREDENTIALS.sub(lambda m: f"{m['scheme']}{MASK}@", str(text))
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        out = out.replace(secret, MASK)
    return out


def redact_uri(uri: str) -> str:
    return redact(uri)
