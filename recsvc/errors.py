"""The project's one error hierarchy. Every error a user or client can cause is a `RecsvcError`.

The CLI prints `str(error)` as one line and exits non-zero; the web layer maps each class to an HTTP
status in one place. Messages name the file, row, field or parameter that was wrong.
"""

SHOWN_CHARS = 60


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value as an error message quotes it: its repr, cut to `limit` characters, so a hostile
    60 KB id never comes back whole in a reply or a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RecsvcError(Exception):
    """Base of every expected, user-facing error."""


class DataContractError(RecsvcError):
    """Input data breaks the contract: a missing table or column, an unreadable file, too many bad rows."""


class ConfigError(RecsvcError):
    """A settings value, CLI parameter, segments file or offer catalog is invalid."""


class NotFoundError(RecsvcError):
    """A requested customer, segment or model version does not exist."""
