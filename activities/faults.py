"""A database error leaves an activity without the data it was about.

PostgreSQL's errors carry the row they concern on a DETAIL line (`Key (email)=(ann@example.com) already exists`,
`Failing row contains (...)`), and Temporal records an activity's failure, its message and its causes, in the
workflow's history, which operators read in the Web UI: no place for a learner's address or name. What the history
keeps is the kind of error, its SQLSTATE and the constraint or table it names; the whole error goes to the worker's
log. The failure stays retryable, as the database error was."""

import logging
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

log = logging.getLogger(__name__)


class DatabaseFault(Exception):
    """A database error as the workflow's history records it."""


def described(error: DBAPIError) -> str:
    """The error without its DETAIL, statement or parameters: PostgreSQL's primary message names no row, except for
    a value it could not read (a DataError), which is named by its kind alone."""
    original = error.orig
    kind = type(original).__name__ if original is not None else type(error).__name__
    sqlstate = getattr(original, "sqlstate", None)
    diagnostics = getattr(original, "diag", None)
    named = [
        f"{label} {value}"
        for label, value in (
            ("SQLSTATE", sqlstate),
            ("constraint", getattr(diagnostics, "constraint_name", None)),
            ("table", getattr(diagnostics, "table_name", None)),
        )
        if value
    ]
    message = "" if isinstance(error, DataError) else str(original or "").split("\n", 1)[0].strip()
    return f"database error {kind}" + (f" ({', '.join(named)})" if named else "") + (f": {message}" if message else "")


class _ActivitiesWithoutData(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except DBAPIError as error:
            log.warning("database error in an activity", exc_info=error)
            raise DatabaseFault(described(error)) from None


class DatabaseErrorsWithoutData(Interceptor):
    """The worker's interceptor that gives Temporal `described` database errors instead of the errors themselves."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivitiesWithoutData(next)
