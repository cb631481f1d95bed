"""Exceptions raised by the driver: one per contract failure.

Every error raised by an ``autodoctor`` SQL function carries a SQLSTATE (the contract's,
:data:`CONTRACT_SQLSTATES`: ``42501``, ``PT404``, ``PT409``, ``PT429`` or class ``22``) and
a stable, machine-readable reason in its DETAIL (``request_not_pending``,
``capacity_reached``...). :func:`from_psycopg` maps the pair to the most specific class
below; the original psycopg error is kept as ``__cause__``. The human MESSAGE is never
parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import psycopg


class AutodoctorError(Exception):
    """An autodoctor-db operation failed."""

    #: SQLSTATE of the underlying PostgreSQL error, when there was one.
    sqlstate: str | None
    #: The stable snake_case reason from the error's DETAIL (``None`` for PostgreSQL's
    #: own errors, such as a malformed uuid).
    reason: str | None
    #: What the caller can do about it, when the server said.
    hint: str | None
    #: The human-readable message.
    message: str

    def __init__(
        self,
        message: str | None = None,
        *,
        sqlstate: str | None = None,
        reason: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message or (self.__doc__ or "autodoctor-db error").strip()
        self.sqlstate = sqlstate
        self.reason = reason
        self.hint = hint
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.reason:
            parts.append(f"[{self.reason}]")
        if self.hint:
            parts.append(f"(hint: {self.hint})")
        return " ".join(parts)


class Forbidden(AutodoctorError):
    """The caller may not do this (42501)."""


class NotAuthenticated(Forbidden):
    """There is no calling user (42501, not_authenticated)."""


class NotMechanic(Forbidden):
    """Only an active mechanic may do this (42501, not_mechanic)."""


class NotQualified(Forbidden):
    """The mechanic's expertise does not cover this session type (42501, not_qualified)."""


class OutOfServiceArea(Forbidden):
    """The request lies outside the mechanic's service radius (42501, out_of_service_area)."""


class NotFound(AutodoctorError):
    """No such request or session, or not one the caller may see (PT404)."""


class Conflict(AutodoctorError):
    """The row is not in a state that allows this (PT409)."""


class RequestNotPending(Conflict):
    """The request is no longer pending: accepted, cancelled or lost to another mechanic."""


class RequestExpired(Conflict):
    """The request is past its expiry time (PT409, request_expired)."""


class CapacityReached(Conflict):
    """The mechanic already has as many active sessions as allowed (PT409, capacity_reached)."""


class InvalidTransition(Conflict):
    """The session state machine forbids this move (PT409, invalid_transition)."""


class TooManyRequests(AutodoctorError):
    """A limit was reached: a customer's pending requests (PT429, HTTP 429)."""


class InvalidInput(AutodoctorError):
    """Bad input: unknown plan, text too long, bad coordinates, malformed value (class 22)."""


class ReadOnly(AutodoctorError):
    """A write was sent to a read-only server, such as a hot standby (25006)."""


class ResyncNeeded(AutodoctorError):
    """An event cursor points before the retained history: re-read the state, then follow."""


class DatabaseError(AutodoctorError):
    """An unexpected database failure (not part of the contract)."""


class ConnectionFailed(DatabaseError):
    """The database could not be reached when opening the driver (``connect()``).

    Raised within ``connect_timeout`` seconds by :func:`autodoctor_db.connect` and
    :func:`autodoctor_db.connect_async` (with ``wait=True``, the default) when no
    connection can be opened: wrong host or port, a missing database, a bad password.
    The message carries libpq's own reason; the psycopg error (or psycopg_pool's
    ``PoolTimeout``) is ``__cause__``.
    """


#: (SQLSTATE, reason) -> class; the most specific match wins.
_BY_REASON: dict[tuple[str, str], type[AutodoctorError]] = {
    ("42501", "not_authenticated"): NotAuthenticated,
    ("42501", "not_mechanic"): NotMechanic,
    ("42501", "not_qualified"): NotQualified,
    ("42501", "out_of_service_area"): OutOfServiceArea,
    ("PT409", "request_not_pending"): RequestNotPending,
    ("PT409", "request_expired"): RequestExpired,
    ("PT409", "capacity_reached"): CapacityReached,
    ("PT409", "invalid_transition"): InvalidTransition,
}

#: The contract's SQLSTATEs (docs/design.md, "Errors"; docs/errors.md): each SQLSTATE, or
#: a class prefix (``"22"``: the whole of class 22, bad input), -> the driver base class
#: of every reason raised with it and the HTTP status PostgREST answers with (``42501``:
#: 403, or 401 for an anonymous caller). The one copy of this fact: :func:`error_class`,
#: :func:`from_psycopg` and the tests read it.
CONTRACT_SQLSTATES: Mapping[str, tuple[type[AutodoctorError], int]] = MappingProxyType(
    {
        "42501": (Forbidden, 403),
        "PT404": (NotFound, 404),
        "PT409": (Conflict, 409),
        "PT429": (TooManyRequests, 429),
        "22": (InvalidInput, 400),
    }
)

#: SQLSTATEs outside the contract that still get a class of their own.
_BY_SQLSTATE: dict[str, type[AutodoctorError]] = {
    "25006": ReadOnly,
}


def contract_of(sqlstate: str | None) -> tuple[type[AutodoctorError], int] | None:
    """(base class, HTTP status) of a contract SQLSTATE, or ``None`` outside the contract."""
    if sqlstate is None:
        return None
    return CONTRACT_SQLSTATES.get(sqlstate) or CONTRACT_SQLSTATES.get(sqlstate[:2])


def is_contract_sqlstate(sqlstate: str | None) -> bool:
    """Whether a failure is one the contract allows (PostgREST maps it to a 4xx)."""
    return contract_of(sqlstate) is not None


def error_class(sqlstate: str | None, reason: str | None) -> type[AutodoctorError]:
    """The exception class for a (SQLSTATE, reason) pair."""
    if sqlstate is None:
        return DatabaseError
    if reason is not None and (sqlstate, reason) in _BY_REASON:
        return _BY_REASON[(sqlstate, reason)]
    contract = contract_of(sqlstate)
    if contract is not None:
        return contract[0]
    return _BY_SQLSTATE.get(sqlstate, DatabaseError)


def from_psycopg(exc: psycopg.Error) -> AutodoctorError:
    """Translate a psycopg error into the driver's exception (raise it ``from exc``)."""
    diag = exc.diag
    sqlstate = exc.sqlstate
    reason = diag.message_detail if is_contract_sqlstate(sqlstate) else None
    # Only the package's own errors put a snake_case token in DETAIL.
    if reason is not None and not reason.replace("_", "").isalnum():
        reason = None
    cls = error_class(sqlstate, reason)
    return cls(
        diag.message_primary or str(exc),
        sqlstate=sqlstate,
        reason=reason,
        hint=diag.message_hint,
    )
