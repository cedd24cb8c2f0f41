"""Secrets never leave in text: credentials inside URIs and storage options are masked.

Use ``redact(text, secrets)`` on any message that may quote a URI or a configuration value
(exception text from MLflow or deltalake, log lines, alert reasons, metadata). It masks the
``user:password@`` part of every URI and each known secret value (e.g. the values of the
storage options), whatever the surrounding text.

``redacted_errors(secrets, replace)`` makes the method decorator a resource puts on every public
method (the lake, the registry): what a method raises leaves with its secrets masked and without
its unredacted cause chain. Each resource says how to get its secrets and how to rebuild an error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

MASK = "***"
_URI_CREDENTIALS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@:]+(?::[^/\s@]*)?)@"
)
SECRET_KEY_HINTS = ("secret", "password", "token", "key", "credential", "session")

F = TypeVar("F", bound=Callable[..., Any])
Replacement = Callable[[Exception, list[str]], BaseException | None]
"""``replace(err, secrets)``: the exception to raise instead of ``err``, or None to re-raise it."""


def secret_values(options: Mapping[str, str] | None) -> list[str]:
    """The values of configuration entries whose names look secret (keys, tokens, passwords)."""
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


def error_chain(err: BaseException, limit: int | None = None) -> list[BaseException]:
    """``err`` and what led to it (``__cause__``, else an unsuppressed ``__context__``), each once,
    at most ``limit`` of them."""
    out: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen and (limit is None or len(out) < limit):
        seen.add(id(current))
        out.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return out


def quotes_a_secret(err: BaseException, secrets: Iterable[str], limit: int | None = None) -> bool:
    """Whether the text of ``err`` or of anything in its chain holds a secret or URI credentials."""
    secrets = list(secrets)
    return any(redact(str(e), secrets) != str(e) for e in error_chain(err, limit))


def redacted_errors(
    secrets: Callable[[Any], Iterable[str]], replace: Replacement
) -> Callable[[F], F]:
    """A method decorator: an exception of the method goes to ``replace(err, secrets(owner))``
    (``owner`` is the method's ``self``); it is re-raised as it is when that returns None, else
    the replacement is raised without a chain: Dagster records an exception's cause chain, where
    the unredacted text would survive."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(owner, *args, **kwargs):
            try:
                return method(owner, *args, **kwargs)
            except Exception as err:
                replacement = replace(err, list(secrets(owner)))
                if replacement is None:
                    raise
                raise replacement from None

        return wrapper  # type: ignore[return-value]

    return decorate
