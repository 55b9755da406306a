"""Activity options shared by the workflows."""

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy


class ActivityOptions(TypedDict):
    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy


# Database work: retried until it succeeds (a business refusal is non-retryable and stops at once).
DATABASE: ActivityOptions = {
    # A transaction takes well under a second; a worker that died holding one is noticed after this long.
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
}

EMAIL_ATTEMPTS = 12
# SMTP: a 4xx reply is retried with backoff for about a day, then the message is recorded as failed.
EMAIL: ActivityOptions = {
    # Above the SMTP client's own 30-second timeout; a worker that died mid-send is noticed after this long.
    "start_to_close_timeout": timedelta(seconds=45),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=10),
        backoff_coefficient=3.0,
        maximum_interval=timedelta(hours=6),
        maximum_attempts=EMAIL_ATTEMPTS,
    ),
}
