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

# An order's own transactions run first as local activities, retried inside the worker: a few quick attempts
# ride out a short outage (about 7 s: backoff 1 + 2 + 4 s). Past them the same transaction is scheduled as an
# activity with DATABASE's options, whose retries leave the history as it is: local retries that went on would
# add a marker and a workflow task every few seconds to the order's history for as long as the database is away.
LOCAL_DATABASE_ATTEMPTS = 4
LOCAL_DATABASE: ActivityOptions = {
    "start_to_close_timeout": DATABASE["start_to_close_timeout"],
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=LOCAL_DATABASE_ATTEMPTS),
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
