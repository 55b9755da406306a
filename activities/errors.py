"""Business refusals leave an activity as non-retryable ApplicationErrors that keep the rule's type."""

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from rules.errors import LicensingError

P = ParamSpec("P")
R = TypeVar("R")


def business_errors_are_final(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except LicensingError as refusal:
            raise ApplicationError(refusal.message, type=refusal.type, non_retryable=True) from refusal

    return wrapper
