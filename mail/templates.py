"""What each email says, in plain text and HTML. Values are escaped for HTML; nothing here does I/O."""

import html
from dataclasses import dataclass
from datetime import datetime

from rules.wording import agreeing, counted


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    partner_name: str
    customer_name: str
    quantity: int
    requested_at: datetime
    recipient_name: str
    expires_at: datetime | None = None
    reason: str | None = None
    reminder_number: int = 0
    cancelled_by_partner: bool = False  # a partner's manager cancelled it in manage mode


def _licences(quantity: int) -> str:
    return counted(quantity, "licence")


def _day(moment: datetime) -> str:
    return moment.strftime("%d %B %Y, %H:%M UTC")


def _render(subject: str, greeting: str, paragraphs: list[str], footer: str) -> Message:
    text = "\n\n".join([greeting, *paragraphs, footer]) + "\n"
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    page = (
        '<!doctype html><html><body style="font-family:Arial,sans-serif;color:#1f2933;max-width:560px">'
        f"<p>{html.escape(greeting)}</p>{body}"
        f'<p style="color:#616e7c;font-size:12px">{html.escape(footer)}</p></body></html>'
    )
    return Message(subject=subject, text=text, html=page)


_FOOTER = "Partner Licensing. You receive this because you manage licences on this account."


def order_requested(facts: OrderFacts) -> Message:
    return _render(
        f"{facts.customer_name} requests {_licences(facts.quantity)}",
        f"Hello {facts.recipient_name},",
        [
            f"{facts.customer_name} has requested {_licences(facts.quantity)} on {_day(facts.requested_at)}.",
            "Open Partner Licences > Orders > Requested Orders, choose the order "
            f"({facts.order_id}) and select Assign to give them the licences from your stock, or reject it "
            "with a reason.",
        ],
        _FOOTER,
    )


def order_reminder(facts: OrderFacts) -> Message:
    return _render(
        f"Reminder: {facts.customer_name} is still waiting for {_licences(facts.quantity)}",
        f"Hello {facts.recipient_name},",
        [
            f"The request of {facts.customer_name} for {_licences(facts.quantity)}, made on "
            f"{_day(facts.requested_at)}, is still waiting for you (reminder {facts.reminder_number}).",
            f"Assign or reject order {facts.order_id} under Partner Licences > Orders > Requested Orders.",
        ],
        _FOOTER,
    )


def order_assigned(facts: OrderFacts) -> Message:
    expiry = _day(facts.expires_at) if facts.expires_at else "the end of the term"
    return _render(
        f"{_licences(facts.quantity).capitalize()} assigned to {facts.customer_name}",
        f"Hello {facts.recipient_name},",
        [
            f"{facts.partner_name} has assigned {_licences(facts.quantity)} to {facts.customer_name}. "
            f"They are valid until {expiry}.",
            "New learners take a licence automatically when you add them. Learners whose licence expired "
            "are renewed only when you allocate one to them: open Licences > Expired Licences.",
        ],
        _FOOTER,
    )


def order_rejected(facts: OrderFacts) -> Message:
    return _render(
        f"Your request for {_licences(facts.quantity)} was not approved",
        f"Hello {facts.recipient_name},",
        [
            f"{facts.partner_name} has rejected the request of {facts.customer_name} for "
            f"{_licences(facts.quantity)} made on {_day(facts.requested_at)}.",
            f"Their reason: {facts.reason or 'none given'}",
            "Contact your account manager at the partner if you have questions.",
        ],
        _FOOTER,
    )


def order_cancelled(facts: OrderFacts) -> Message:
    if facts.reason is not None:  # cancelled by the service, not by the customer
        return _render(
            f"The request of {facts.customer_name} for {_licences(facts.quantity)} was cancelled",
            f"Hello {facts.recipient_name},",
            [
                f"The request of {facts.customer_name} for {_licences(facts.quantity)}, made on "
                f"{_day(facts.requested_at)}, was cancelled: {facts.reason}. No licences were assigned.",
                "If the licences are still needed, the customer's managers can request them again.",
            ],
            _FOOTER,
        )
    if facts.cancelled_by_partner:
        return _render(
            f"{facts.partner_name} cancelled the request of {facts.customer_name} for {_licences(facts.quantity)}",
            f"Hello {facts.recipient_name},",
            [
                f"The request of {facts.customer_name} for {_licences(facts.quantity)}, made on "
                f"{_day(facts.requested_at)}, was cancelled by a manager of {facts.partner_name}, acting for "
                f"{facts.customer_name} in manage mode. No licences were assigned.",
                "If the licences are still needed, they can be requested again.",
            ],
            _FOOTER,
        )
    return _render(
        f"{facts.customer_name} cancelled a request for {_licences(facts.quantity)}",
        f"Hello {facts.recipient_name},",
        [
            f"The request of {facts.customer_name} for {_licences(facts.quantity)}, made on "
            f"{_day(facts.requested_at)}, was cancelled. Nothing is left for you to do.",
        ],
        _FOOTER,
    )


@dataclass(frozen=True)
class BlockFacts:
    block_id: str
    partner_name: str
    customer_name: str
    kind: str
    quantity: int
    expires_at: datetime
    recipient_name: str
    learners_expired: int = 0
    reason: str | None = None


def block_reminder(facts: BlockFacts) -> Message:
    return _render(
        f"{_licences(facts.quantity).capitalize()} of {facts.customer_name} "
        f"{agreeing(facts.quantity, 'expires', 'expire')} on {_day(facts.expires_at)}",
        f"Hello {facts.recipient_name},",
        [
            f"The {facts.kind} {agreeing(facts.quantity, 'licence', 'licences')} of {facts.customer_name} "
            f"({_licences(facts.quantity)}, block {facts.block_id}) {agreeing(facts.quantity, 'expires', 'expire')} "
            f"on {_day(facts.expires_at)}.",
            "To keep learners learning without a gap, request new licences now (Licence > Order > Request "
            "Licences). When these expire, learners are not renewed automatically: you allocate new licences "
            "to the learners you choose under Licence > Expired Licences.",
        ],
        _FOOTER,
    )


def _holders(learners: int) -> str:
    if learners == 0:
        return "No learner held one."
    return f"{counted(learners, 'learner')} held one and now {agreeing(learners, 'shows', 'show')} as expired."


def block_expired(facts: BlockFacts) -> Message:
    why = f" early: {facts.reason}" if facts.reason else ""
    return _render(
        f"{_licences(facts.quantity).capitalize()} of {facts.customer_name} "
        f"{agreeing(facts.quantity, 'has', 'have')} expired",
        f"Hello {facts.recipient_name},",
        [
            f"The {facts.kind} {agreeing(facts.quantity, 'licence', 'licences')} of {facts.customer_name} "
            f"({_licences(facts.quantity)}, block {facts.block_id}) expired{why} on {_day(facts.expires_at)}.",
            f"{_holders(facts.learners_expired)} Nobody is renewed automatically: review the list under Licence > "
            "Expired Licences and allocate licences to the learners who should keep access.",
        ],
        _FOOTER,
    )
