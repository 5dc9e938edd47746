"""Which failures a task may retry, and the retry settings the flows share.

A retry only helps when the same call can succeed a moment later: a dropped
connection, a timeout, GCS answering 429/5xx, a Beam job that died of one of
those. Bad input never heals, so it fails at once: recipe and schema errors,
missing sources, an output that holds another dataset, a held lock,
validation failures, any ValueError. `is_transient` decides from the
exception and its causes (Beam wraps a worker's error in its own exception,
sometimes only as text), `retry_condition` adapts it to Prefect's
`retry_condition_fn`; `backoff_delays` gives the same waits to a build run
without Prefect (unibed/flows/build_direct.py).
"""

from __future__ import annotations

import socket
from typing import Any

RETRIES = 3
BACKOFF_SECONDS = 10.0  # 10 s, 20 s, 40 s: a GCS or network blip is over by then

# Errors that say the input or the output's state is wrong: retrying cannot help.
_PERMANENT_NAMES = {
    "SchemaError", "SourceLayoutError", "OutputExistsError", "OutputLockedError",
    "ValidationError", "ParameterError", "ConfigError", "CorruptFileError", "ChecksumError",
    "StageFailed",
    "FileNotFoundError", "PermissionError", "IsADirectoryError", "NotADirectoryError",
    "NotFound", "Forbidden", "Unauthorized", "BadRequest", "PreconditionFailed",
}
# google.api_core / google.auth exceptions that are worth another try
_TRANSIENT_NAMES = {
    "ServiceUnavailable", "TooManyRequests", "InternalServerError", "DeadlineExceeded",
    "GatewayTimeout", "BadGateway", "RetryError", "TransportError", "ServerError",
    "ConnectionError", "ChunkedEncodingError", "ReadTimeout", "ConnectTimeout", "Timeout",
    "IncompleteRead", "RemoteDisconnected", "ProtocolError",
}
# Beam re-raises a worker's failure as RuntimeError/Exception carrying the text only
_TRANSIENT_TEXT = (
    "503 service unavailable", "429 too many requests", "500 internal server error",
    "502 bad gateway", "504 gateway timeout", "deadline exceeded", "connection reset",
    "connection refused", "connection aborted", "broken pipe", "timed out", "temporarily unavailable",
    "serviceunavailable", "toomanyrequests", "internalservererror", "deadlineexceeded",
    "remotedisconnected", "backendError".lower(), "rateLimitExceeded".lower(),
    "worker lost contact", "the worker lost contact",
)
_PERMANENT_TEXT = ("schemaerror", "sourcelayouterror", "outputexistserror", "validationerror")


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _chain(exc: BaseException) -> list[BaseException]:
    seen, out = set(), []
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) looks like a passing infrastructure fault."""
    chain = _chain(exc)
    for e in chain:
        verdict = getattr(e, "transient", None)  # an exception that knows (e.g. TrainerFailed)
        if isinstance(verdict, bool):
            return verdict
    for e in chain:  # a permanent cause anywhere wins: never retry bad input
        names = _names(e)
        if names & _PERMANENT_NAMES:
            return False
        if isinstance(e, ValueError) and not names & _TRANSIENT_NAMES:
            return False
    for e in chain:
        if _names(e) & _TRANSIENT_NAMES:
            return True
        if isinstance(e, (ConnectionError, TimeoutError, socket.timeout, socket.gaierror)):
            return True
        text = str(e).lower()
        if any(t in text for t in _PERMANENT_TEXT):
            return False
        if any(t in text for t in _TRANSIENT_TEXT):
            return True
        if isinstance(e, OSError) and e.errno is not None:
            return True  # an IO error with an errno (EIO, ECONNRESET, ...): worth one more try
    return False


def retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only transient failures."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception as e:  # noqa: BLE001 - the result itself may be unreadable
            exc = e
    return isinstance(exc, BaseException) and is_transient(exc)


def retry_settings(retries: int = RETRIES, backoff: float = BACKOFF_SECONDS) -> dict:
    """Keyword arguments for `@task(...)`: retries with exponential backoff and jitter."""
    from prefect.tasks import exponential_backoff  # here: a direct build never imports Prefect

    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=backoff),
        "retry_jitter_factor": 0.2,
        "retry_condition_fn": retry_condition,
    }


def backoff_delays(retries: int = RETRIES, backoff: float = BACKOFF_SECONDS) -> list[float]:
    """The waits before each retry: what Prefect's exponential_backoff gives the tasks."""
    return [backoff * 2**attempt for attempt in range(retries)]
