"""A licence block's term: renewal reminders before it ends, then every licence expires at once, then a summary.

Workflow id `licence-block-{block_id}`. It sleeps for months: timers live on the Temporal server, so the term
keeps its promise across worker and server restarts. An upgrade from trial ends a trial block early through the
`expire_now` update.
"""

import asyncio
import uuid
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from payloads.blocks import BlockEvent, BlockExpired, BlockNotice, ExpireBlock, ExpireNow, LicenceBlockInput
    from payloads.common import SYSTEM
    from rules.licences import Reminder, renewal_reminders
    from rules.wording import counted
    from workflows import options
    from workflows.notices import deliver_emails, send_notices, write_notices


# Since this patch, a renewal reminder whose time came while no worker ran is passed over when the block has
# expired meanwhile or a later reminder is due as well. Checked only for such a late reminder: terms that never met
# one replay as they ran. Recorded in histories: never change the name.
LATE_REMINDERS_PASSED_OVER = "late-renewal-reminders-passed-over"

# Since this patch, a renewal reminder's emails that the relay did not take at once are delivered beside the term,
# not before it goes on: their retries last up to a day (workflows/options.EMAIL), and the block's expiry must not
# wait for them. Asked only when such an email is left: terms whose reminders all went out at once replay as they
# ran. Recorded in histories: never change the name.
REMINDER_EMAILS_BESIDE_THE_TERM = "reminder-emails-beside-the-term"


def block_workflow_id(block_id: uuid.UUID) -> str:
    return f"licence-block-{block_id}"


@workflow.defn
class LicenceBlockWorkflow:
    @workflow.init
    def __init__(self, block: LicenceBlockInput) -> None:
        self._block = block
        self._expired: BlockExpired | None = None
        self._expiring = False
        self._deliveries: list[asyncio.Future[None]] = []  # reminder emails still being delivered

    @workflow.run
    async def run(self, block: LicenceBlockInput) -> BlockExpired:
        reminders = renewal_reminders(block.expires_at, block.renewal_reminders, starts_at=block.starts_at)
        for index, reminder in enumerate(reminders):
            if await self._ended_before(reminder.at, f"next: the {reminder.offset} renewal reminder"):
                break
            if self._overtaken(reminders[index + 1 :]) and workflow.patched(LATE_REMINDERS_PASSED_OVER):
                workflow.logger.info("the %s renewal reminder came too late to send; passed over", reminder.offset)
                continue
            await self._remind(reminder)
        if not await self._ended_before(block.expires_at, "next: expiry"):
            self._expiring = True
            self._expired = await self._expire(
                ExpireBlock(block_id=block.block_id, at=block.expires_at, actor=SYSTEM, reason="the term ended")
            )
        await workflow.wait_condition(lambda: self._expired is not None)
        assert self._expired is not None
        notice = BlockNotice(block_id=block.block_id, event=BlockEvent.EXPIRED, at=workflow.now())
        await send_notices("notify_block_event", notice, what="expiry summary")
        await asyncio.gather(*self._deliveries)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.set_current_details(f"Expired at {self._expired.expired_at.isoformat()}.")
        return self._expired

    async def _remind(self, reminder: Reminder) -> None:
        what = f"{reminder.offset} renewal reminder"
        notice = BlockNotice(
            block_id=self._block.block_id, event=BlockEvent.REMINDER, at=workflow.now(), offset=reminder.offset
        )
        left = await write_notices("notify_block_event", notice, what=what)
        if left and workflow.patched(REMINDER_EMAILS_BESIDE_THE_TERM):
            self._deliveries.append(asyncio.ensure_future(deliver_emails(left, what=what)))
        else:
            await deliver_emails(left, what=what)

    def _overtaken(self, later: list[Reminder]) -> bool:
        """Whether a reminder whose time came while no worker ran is overtaken: by the block's expiry (it would
        announce an end already past) or by a later reminder that is due as well (only the last is sent)."""
        now = workflow.now()
        return now >= self._block.expires_at or any(r.at <= now for r in later)

    async def _ended_before(self, moment: datetime, next_step: str) -> bool:
        """Sleep until `moment`, or until the block is expired early; True if it was."""
        workflow.set_current_details(
            f"{counted(self._block.quantity, f'{self._block.kind} licence')}, "
            f"valid until {self._block.expires_at.isoformat()}; {next_step} at {moment.isoformat()}."
        )
        wait = moment - workflow.now()
        if wait.total_seconds() > 0:
            try:
                await workflow.wait_condition(lambda: self._expiring, timeout=wait)
            except TimeoutError:
                return False
        return self._expiring

    async def _expire(self, data: ExpireBlock) -> BlockExpired:
        expired: BlockExpired = await workflow.execute_activity(
            "expire_block",
            data,
            result_type=BlockExpired,
            summary="Expire every licence of the block",
            **options.DATABASE,
        )
        return expired

    @workflow.update
    async def expire_now(self, request: ExpireNow) -> BlockExpired:
        self._expiring = True
        self._expired = await self._expire(
            ExpireBlock(block_id=self._block.block_id, at=workflow.now(), actor=request.actor, reason=request.reason)
        )
        return self._expired

    @expire_now.validator
    def _validate_expire_now(self, request: ExpireNow) -> None:
        if self._expiring or self._expired is not None:
            raise ApplicationError("the licence block has already expired", type="BlockExpired")
