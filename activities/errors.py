"""Business refusals leave an activity as non-retryable, benign ApplicationErrors that keep the rule's type."""

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from rules.errors import LicensingError

P = ParamSpec("P")
R = TypeVar("R")


def business_errors_are_final(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except LicensingError as refusal:
            # Benign: a refusal is an answer, not a fault; the worker logs it at DEBUG, without a traceback,
            # and it counts in no failure metric.
            raise ApplicationError(
                refusal.message, type=refusal.type, non_retryable=True, category=ApplicationErrorCategory.BENIGN
            ) from refusal

    return wrapper
