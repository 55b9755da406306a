"""Activities of the licence order workflow: the database work and the notices."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors_are_final
from db import notices, orders
from payloads.orders import (
    AssignOrder,
    CloseOrder,
    NoticeResult,
    OrderNotice,
    OrderOutcome,
    OrderRegistered,
    PersistOrder,
)


class OrderActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, mail_from: str) -> None:
        self._sessions = sessions
        self._mail_from = mail_from

    @activity.defn(name="persist_order")
    @business_errors_are_final
    async def persist_order(self, data: PersistOrder) -> OrderRegistered:
        return await orders.persist_order(self._sessions, data)

    @activity.defn(name="assign_order")
    @business_errors_are_final
    async def assign_order(self, data: AssignOrder) -> OrderOutcome:
        return await orders.assign_order(self._sessions, data)

    @activity.defn(name="close_order")
    @business_errors_are_final
    async def close_order(self, data: CloseOrder) -> OrderOutcome:
        return await orders.close_order(self._sessions, data)

    @activity.defn(name="notify_order_event")
    @business_errors_are_final
    async def notify_order_event(self, data: OrderNotice) -> NoticeResult:
        return await notices.notify_order_event(self._sessions, data, mail_from=self._mail_from)
