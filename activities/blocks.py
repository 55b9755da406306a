"""Activities of the licence-term workflow: expiring a block and telling the managers."""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client

from activities.errors import business_errors_are_final
from db import blocks, notices
from licensing import terms
from mail.postman import Postman
from payloads.blocks import BlockExpired, BlockNotice, ExpireBlock, LicenceBlockInput
from payloads.orders import NoticeResult


class BlockActivities:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], postman: Postman, *, client: Client, task_queue: str
    ) -> None:
        self._sessions = sessions
        self._postman = postman
        self._mail_from = postman.mail_from
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name="start_licence_term")
    async def start_licence_term(self, block: LicenceBlockInput) -> None:
        await terms.start_licence_term(self._client, self._task_queue, block)

    @activity.defn(name="expire_block")
    @business_errors_are_final
    async def expire_block(self, data: ExpireBlock) -> BlockExpired:
        return await blocks.expire_block(self._sessions, data)

    @activity.defn(name="notify_block_event")
    @business_errors_are_final
    async def notify_block_event(self, data: BlockNotice) -> NoticeResult:
        """Writes the notices and sends their emails at once; the workflow delivers what the relay refused."""
        written = await notices.notify_block_event(self._sessions, data, mail_from=self._mail_from)
        return await self._postman.sent(written)
