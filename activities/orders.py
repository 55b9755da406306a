"""Activities of the licence order workflow: the database work and the notices. Each sends the emails it
wrote as soon as its transaction is committed; the workflow delivers the rest, one retrying activity each."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client

from activities.errors import business_errors_are_final
from db import notices, orders
from licensing import terms
from mail.postman import Postman
from payloads.orders import (
    AssignOrder,
    CloseOrder,
    LicenceTerm,
    NoticeResult,
    OrderNotice,
    OrderOutcome,
    OrderRegistered,
    PersistOrder,
    RecoverDecision,
    StoredDecision,
)
from rules.orders import OrderStatus


class OrderActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], postman: Postman, *, client: Client, task_queue: str
    ) -> None:
        self._sessions = sessions
        self._postman = postman
        self._mail_from = postman.mail_from
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name="persist_order")
    @business_errors_are_final
    async def persist_order(self, data: PersistOrder) -> OrderRegistered:
        return await self._postman.sent(await orders.persist_order(self._sessions, data, mail_from=self._mail_from))

    @activity.defn(name="assign_order")
    @business_errors_are_final
    async def assign_order(self, data: AssignOrder) -> OrderOutcome:
        """The assignment (and its notices) in one transaction; then, if asked, the new block's term workflow,
        started once however often this is retried."""
        outcome = await orders.assign_order(self._sessions, data, mail_from=self._mail_from)
        return await self._announce(outcome, data.start_term)

    @activity.defn(name="close_order")
    @business_errors_are_final
    async def close_order(self, data: CloseOrder) -> OrderOutcome:
        return await self._postman.sent(await orders.close_order(self._sessions, data, mail_from=self._mail_from))

    @activity.defn(name="recover_order_decision")
    @business_errors_are_final
    async def recover_order_decision(self, data: RecoverDecision) -> StoredDecision:
        """The decision the database holds for an order whose workflow lost the update that made it: its term
        started (once, however often this runs) and its emails sent, as the deciding activity would have."""
        outcome = await orders.stored_decision(self._sessions, data.order_id, mail_from=self._mail_from)
        if outcome is None:
            return StoredDecision()
        return StoredDecision(outcome=await self._announce(outcome, data.term))

    async def _announce(self, outcome: OrderOutcome, term: LicenceTerm | None) -> OrderOutcome:
        """A committed decision's follow-up: an assignment's term started (if asked), then its emails sent."""
        if term is not None and outcome.status is OrderStatus.ASSIGNED:
            await terms.start_licence_term(self._client, self._task_queue, term.of(outcome))
        return await self._postman.sent(outcome)

    @activity.defn(name="notify_order_event")
    @business_errors_are_final
    async def notify_order_event(self, data: OrderNotice) -> NoticeResult:
        written = await notices.notify_order_event(self._sessions, data, mail_from=self._mail_from)
        return await self._postman.sent(written)
