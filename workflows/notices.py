"""Telling people: one activity writes the notices (in-app and outbox) for an event (or the activity that made
the change wrote them with it) and sends their emails at once; then one activity per email the relay did not
take delivers it, with retries. All are keyed by the event, so a replayed or retried step writes and sends
nothing twice."""

import asyncio
import uuid
from collections.abc import Sequence

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from payloads.email import DeliverEmail, DeliveryResult
    from payloads.orders import NoticeResult
    from workflows import options


async def send_notices(activity: str, notice: BaseModel, *, what: str) -> None:
    await deliver_emails(await write_notices(activity, notice, what=what), what=what)


async def write_notices(activity: str, notice: BaseModel, *, what: str) -> list[uuid.UUID]:
    """Write the event's notices (the activity sends their emails at once); the emails still to deliver."""
    written: NoticeResult = await workflow.execute_activity(
        activity, notice, result_type=NoticeResult, summary=f"Write the {what} notices", **options.DATABASE
    )
    return written.emails_due()


async def deliver_emails(email_ids: Sequence[uuid.UUID], *, what: str) -> None:
    """One activity per email, side by side: each is retried (or recorded failed) on its own. Usually there
    are none: the activity that wrote the emails sent them at once."""
    await asyncio.gather(
        *(
            workflow.execute_activity(
                "deliver_email",
                DeliverEmail(email_id=email_id, max_attempts=options.EMAIL_ATTEMPTS),
                result_type=DeliveryResult,
                summary=f"Send the {what} email",
                **options.EMAIL,
            )
            for email_id in email_ids
        )
    )
