"""The project's one error hierarchy. Every error a user, a client or the environment can cause is
a `RecsvcError`; anything else is a bug.

Who caused it decides what the web layer answers (`recsvc.api.errors` maps the classes, in one
place): the client's own mistakes (`ClientError`: a bad parameter or body, something that does not
exist) are 4xx and say what was wrong; a conflict with the service's state (`ArtifactError`, a
version that does not open) is 409; an unreachable store is 503; everything else (`ConfigError`,
`DataContractError`, the training lock's errors) is the operator's or the data's, never the
client's, so it is a 500 with nothing internal in the body. The CLIs print `str(error)` as one
line and exit non-zero. Messages name the file, row, field or parameter at fault, cut long values
(`shown`) and never carry an absolute path or a URL of ours when a client may read them.
"""

SHOWN_CHARS = 60


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value as an error message quotes it: its repr, cut to `limit` characters, so a hostile
    60 KB id never comes back whole in a reply or a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RecsvcError(Exception):
    """Base of every expected, user-facing error."""


# --- the client's mistakes (4xx) ------------------------------------------------------------------


class ClientError(RecsvcError):
    """The request was wrong: the message names the parameter, field or thing at fault."""


class InvalidRequest(ClientError):
    """A parameter or the body is wrong (400)."""


class NotFoundError(ClientError):
    """A requested customer, segment or model version does not exist (404)."""


class UnsupportedMediaType(ClientError):
    """The body is not of a type the operation takes (415)."""


# --- the service's state, its environment, its operator ---------------------------------------------


class ArtifactError(RecsvcError):
    """A model version is missing, corrupt or of an incompatible format (409 when a client asked
    for that version)."""


class StoreUnavailable(RecsvcError):
    """The store's backing server cannot be reached or refuses writes (503: retry later)."""


class ConfigError(RecsvcError):
    """A settings value, CLI parameter, segments file or offer catalog is invalid."""


class DataContractError(RecsvcError):
    """Input data breaks the contract: a missing table or column, an unreadable file, too many bad rows."""


class LockHeld(RecsvcError):
    """Another training run holds the lock of this store."""


class LockLost(RecsvcError):
    """The run's lock expired or was taken over while the run worked: it must not publish."""
