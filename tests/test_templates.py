"""What the emails say agrees with the number they speak of: one licence expires, three licences expire."""

from datetime import UTC, datetime

import pytest

from mail.templates import BlockFacts, OrderFacts, block_expired, block_reminder, order_requested
from rules.wording import counted, size

WHEN = datetime(2027, 3, 1, 9, tzinfo=UTC)


def _block(quantity: int) -> BlockFacts:
    return BlockFacts(
        block_id="b-1",
        partner_name="Northwind Learning",
        customer_name="Contoso Ltd",
        kind="premium",
        quantity=quantity,
        expires_at=WHEN,
        recipient_name="Casey",
        learners_expired=quantity,
    )


@pytest.mark.parametrize(
    ("quantity", "reminder", "expired", "body"),
    [
        (1, "1 licence of Contoso Ltd expires on", "1 licence of Contoso Ltd has expired", "The premium licence of"),
        (3, "3 licences of Contoso Ltd expire on", "3 licences of Contoso Ltd have expired", "The premium licences of"),
    ],
)
def test_a_blocks_emails_agree_with_its_quantity(quantity: int, reminder: str, expired: str, body: str) -> None:
    assert block_reminder(_block(quantity)).subject.startswith(reminder)
    assert block_expired(_block(quantity)).subject == expired
    assert body in block_reminder(_block(quantity)).text


@pytest.mark.parametrize(
    ("learners", "told"),
    [
        (0, "No learner held one."),
        (1, "1 learner held one and now shows as expired."),
        (3, "3 learners held one and now show as expired."),
    ],
)
def test_an_expiry_summary_agrees_with_how_many_learners_held_a_licence(learners: int, told: str) -> None:
    facts = BlockFacts(**{**_block(3).__dict__, "learners_expired": learners})
    assert told in block_expired(facts).text


def test_an_order_for_one_licence_says_licence() -> None:
    facts = OrderFacts(
        order_id="o-1",
        partner_name="Northwind Learning",
        customer_name="Contoso Ltd",
        quantity=1,
        requested_at=WHEN,
        recipient_name="Pat",
    )
    assert order_requested(facts).subject == "Contoso Ltd requests 1 licence"


def test_counted_takes_the_plural_it_is_given() -> None:
    assert (counted(1, "row"), counted(2, "row"), counted(2, "person", "people")) == ("1 row", "2 rows", "2 people")


def test_sizes_read_as_people_say_them() -> None:
    assert [size(n) for n in (20 * 1024 * 1024 + 64 * 1024, 1024 * 1024, 1536, 1, 300)] == [
        "20.1 MB",
        "1 MB",
        "1.5 KB",
        "1 byte",
        "300 bytes",
    ]
