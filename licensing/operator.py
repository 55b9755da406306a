"""What the operator CLI does, through the same data functions and workflow starters as the API."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import directory, imports, outbox
from db.models import Customer, LicenceBlock, LicenceOrder, OutboxEmail, Partner, User
from db.session import create_engine, create_session_factory
from db.types import affected
from licensing.config import Settings
from licensing.imports import start_import
from licensing.reconcile import Reconciled, uploader
from licensing.reconcile import reconcile as repair
from licensing.temporal import connect, postman
from mail import smtp
from payloads.common import SYSTEM, Actor, Role
from payloads.imports import ImportProgress
from rules.errors import InvalidInput, NotFound
from rules.learner_csv import read_rows
from rules.text import one_line


def now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(settings.database_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def _current_user(session: AsyncSession, email: str, *, whom: str) -> User:
    """The user with this email, whose access stands; `whom` says whose email to give instead."""
    user = (await session.execute(select(User).where(User.email == email.lower()))).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user with email {email}; use the email of {whom}")
    if user.access_removed_at is not None:
        raise InvalidInput(f"the access of {email} was removed; use the email of a current {whom.partition(' ')[2]}")
    return user


async def acting_user(session: AsyncSession, email: str) -> Actor:
    """The operator a change is recorded against (`--by EMAIL`): creating partners and crediting their stock is
    an operator's work, as through the API."""
    user = await _current_user(session, email, whom="an operator")
    if user.role != Role.OPERATOR:
        raise InvalidInput(
            f"{email} is a {Role(user.role).value.replace('_', ' ')}, not an operator; use an operator's email"
        )
    return Actor(user_id=user.id, role=Role.OPERATOR)


async def customer_uploader(session: AsyncSession, email: str, customer: Customer) -> Actor:
    """Who a CSV import from the command line is recorded against (`--by EMAIL`): as through the API, a manager
    of the customer, or one of its partner's managers (in manage mode); nobody else imports for a customer."""
    user = await _current_user(session, email, whom="a manager of the customer or of its partner")
    if (user.role == Role.CUSTOMER_MANAGER and user.customer_id == customer.id) or (
        user.role == Role.PARTNER_MANAGER and user.partner_id == customer.partner_id
    ):
        return uploader(user, customer)
    raise InvalidInput(
        f"{email} does not manage {customer.name} or work for its partner; "
        "use the email of one of its managers or of its partner's managers"
    )


async def issue_token(settings: Settings, email: str) -> str:
    """A new token for the user with this email (an operator who lost theirs), shown once; restores a user whose
    access was removed."""
    async with database(settings) as sessions, sessions.begin() as session:
        found = await session.execute(select(User).where(User.email == email.lower()).with_for_update())
        user = found.scalar_one_or_none()
        if user is None:
            raise NotFound(f"no user with email {email}")
        return await directory.issue_token(session, user, actor=SYSTEM, at=now())


async def partners(settings: Settings) -> list[Partner]:
    async with database(settings) as sessions, sessions() as session:
        return list((await session.execute(select(Partner).order_by(Partner.name))).scalars())


async def create_partner(settings: Settings, name: str, by: str) -> Partner:
    name = one_line(name, "the partner's name")
    async with database(settings) as sessions, sessions.begin() as session:
        return await directory.create_partner(session, name=name, actor=await acting_user(session, by), at=now())


async def credit_stock(settings: Settings, partner_id: uuid.UUID, quantity: int, reference: str, by: str) -> int:
    reference = one_line(reference, "the purchase reference")
    async with database(settings) as sessions, sessions.begin() as session:
        await directory.get_partner(session, partner_id)
        return await directory.credit_stock(
            session,
            partner_id=partner_id,
            quantity=quantity,
            reference=reference,
            actor=await acting_user(session, by),
            at=now(),
        )


async def requested_orders(settings: Settings, partner_id: uuid.UUID) -> list[tuple[LicenceOrder, str]]:
    """The partner's requested orders, oldest first, each with its customer's name."""
    async with database(settings) as sessions, sessions() as session:
        await directory.get_partner(session, partner_id)
        query = (
            select(LicenceOrder, Customer.name)
            .join(Customer, Customer.id == LicenceOrder.customer_id)
            .where(LicenceOrder.partner_id == partner_id, LicenceOrder.status == "requested")
        )
        found = await session.execute(query.order_by(LicenceOrder.requested_at))
        return [(order, name) for order, name in found]


@dataclass(frozen=True)
class Licences:
    counts: dict[str, int]
    blocks: list[LicenceBlock]
    at: datetime  # when they were read: a block whose term ended by then is shown expired, as the API shows it

    def status_of(self, block: LicenceBlock) -> str:
        return "expired" if block.status == "active" and block.expires_at <= self.at else block.status


async def customer_licences(settings: Settings, customer_id: uuid.UUID) -> Licences:
    async with database(settings) as sessions, sessions() as session:
        await directory.get_customer(session, customer_id)
        at = datetime.now(UTC)
        counts = (await directory.licence_counts(session, [customer_id], now=at))[customer_id]
        query = select(LicenceBlock).where(LicenceBlock.customer_id == customer_id).order_by(LicenceBlock.expires_at)
        return Licences(counts=counts, blocks=list((await session.execute(query)).scalars()), at=at)


async def import_csv(
    settings: Settings, customer_id: uuid.UUID, path: Path, by: str, progress: Callable[[int, int], None]
) -> ImportProgress:
    """Store the file and start its import workflow, as the API does; report progress until it finishes."""
    async with database(settings) as sessions:
        async with sessions.begin() as session:
            customer = await directory.get_customer(session, customer_id)
            actor = await customer_uploader(session, by, customer)
            with path.open("rb") as stream:
                upload = await imports.store_upload(
                    session,
                    customer_id=customer_id,
                    filename=path.name,
                    rows=read_rows(stream, max_rows=settings.import_max_rows),
                    actor=actor,
                    now=now(),
                )
        await start_import(await connect(settings), settings, customer, upload, actor)
        while True:
            async with sessions() as session:
                current = await imports.get_import(session, customer_id, upload.id)
            progress(current.processed_rows, current.total_rows)
            if current.status == "finished":
                return imports.progress_of(current)
            await asyncio.sleep(0.5)


async def reconcile(settings: Settings, *, everything: bool) -> Reconciled:
    since = None if everything else now() - timedelta(days=7)
    async with database(settings) as sessions:
        # By hand, often right after a terminate in the Web UI: every workflow is asked about, none taken on the
        # word of a listing that may trail it.
        return await repair(await connect(settings), settings, sessions, blocks_since=since, trust_listing=False)


async def failed_emails(settings: Settings) -> list[OutboxEmail]:
    async with database(settings) as sessions, sessions() as session:
        query = select(OutboxEmail).where(OutboxEmail.status == "failed").order_by(OutboxEmail.created_at)
        return list((await session.execute(query)).scalars())


async def resend_email(settings: Settings, email_id: uuid.UUID) -> None:
    """Send a failed email again, once its cause is fixed: same message, same Message-ID."""
    async with database(settings) as sessions:
        mail = postman(settings, sessions)
        email = await outbox.load(mail.readers, email_id)
        async with sessions.begin() as session:
            # Taken from `failed` in one statement (and claimed): of two operators resending it at once, one sends it.
            claim = outbox.Claim.new(outbox.DELIVERY_CLAIM)
            taken = await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id, OutboxEmail.status == "failed")
                .values(status="pending", claimed_by=claim.token, claimed_until=claim.until)
            )
        if not affected(taken):
            current = await outbox.load(mail.readers, email_id)
            raise NotFound(f"email {email_id} has not failed (it is {current.status})")
        try:
            await mail.send_one(email)
        except (smtp.TemporaryFailure, smtp.PermanentFailure) as problem:
            await mail.record([outbox.Attempt(email_id, "failed", str(problem))])
            raise
        # Sent: recorded even if the database blinks now (otherwise the message would stay `pending` for good).
        await mail.record([outbox.Attempt(email_id, "sent")])
