"""Who is calling, and what they may see. Another tenant's object is answered as if it did not exist (404);
a visible object the caller's role may not change is a 403."""

import uuid
from dataclasses import dataclass

from api.errors import Forbidden
from db.models import Customer, LicenceOrder, User
from payloads.common import Actor, Role
from rules.errors import NotFound


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    role: Role
    partner_id: uuid.UUID | None  # for a customer manager: its customer's partner
    customer_id: uuid.UUID | None

    @classmethod
    def of(cls, user: User, customer_partner_id: uuid.UUID | None) -> "Principal":
        return cls(
            user_id=user.id,
            role=Role(user.role),
            partner_id=user.partner_id if user.role == Role.PARTNER_MANAGER else customer_partner_id,
            customer_id=user.customer_id,
        )

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, role=self.role)

    def is_partner_manager_of(self, partner_id: uuid.UUID) -> bool:
        return self.role is Role.PARTNER_MANAGER and self.partner_id == partner_id

    def is_customer_manager_of(self, customer_id: uuid.UUID) -> bool:
        return self.role is Role.CUSTOMER_MANAGER and self.customer_id == customer_id


def require_operator(principal: Principal) -> None:
    if principal.role is not Role.OPERATOR:
        raise Forbidden("only an operator may do this")


def see_partner(principal: Principal, partner_id: uuid.UUID) -> None:
    """Operators and the partner's managers; the partner's customer managers get 403, anyone else 404."""
    if principal.role is Role.OPERATOR or principal.is_partner_manager_of(partner_id):
        return
    if principal.role is Role.CUSTOMER_MANAGER and principal.partner_id == partner_id:
        raise Forbidden("this is for the partner's managers; customer managers cannot do it")
    raise NotFound(f"partner {partner_id} not found")


def manage_partner(principal: Principal, partner_id: uuid.UUID) -> None:
    """The partner's own managers only (an operator sees, but does not run, a partner's business)."""
    see_partner(principal, partner_id)
    if not principal.is_partner_manager_of(partner_id):
        raise Forbidden("only the partner's managers may do this")


def see_customer(principal: Principal, customer: Customer) -> None:
    if (
        principal.role is Role.OPERATOR
        or principal.is_partner_manager_of(customer.partner_id)
        or principal.is_customer_manager_of(customer.id)
    ):
        return
    raise NotFound(f"customer {customer.id} not found")


def act_for_customer(principal: Principal, customer: Customer) -> Actor:
    """The customer's managers act as themselves; the partner's managers act in manage mode, audited as such."""
    see_customer(principal, customer)
    if principal.is_customer_manager_of(customer.id):
        return principal.actor
    if principal.is_partner_manager_of(customer.partner_id):
        return Actor(
            user_id=principal.user_id, role=principal.role, manage_mode=True, on_behalf_of_customer_id=customer.id
        )
    raise Forbidden("operators do not act for customers; the customer's partner does, in manage mode")


def see_user(principal: Principal, user: User, works_for: uuid.UUID | None) -> None:
    """Operators see everyone; a partner's managers see the partner's managers and its customers' managers
    (`works_for`: the partner a user works for); a customer's managers see each other. Anyone else gets 404."""
    if principal.role is Role.OPERATOR or principal.user_id == user.id:
        return
    if principal.role is Role.PARTNER_MANAGER and works_for == principal.partner_id:
        return
    if principal.role is Role.CUSTOMER_MANAGER and user.customer_id == principal.customer_id:
        return
    raise NotFound(f"user {user.id} not found")


def manage_user(principal: Principal, user: User, works_for: uuid.UUID | None) -> None:
    """Who may remove a user's access or give it a new token: an operator, anyone's; a partner's managers, the
    managers of its customers (the users they may create); everyone, a new token of their own."""
    see_user(principal, user, works_for)
    if principal.role is Role.OPERATOR or principal.user_id == user.id:
        return
    if principal.role is Role.PARTNER_MANAGER and user.role == Role.CUSTOMER_MANAGER:
        return
    if principal.role is Role.PARTNER_MANAGER:
        raise Forbidden("a partner's managers are managed by an operator; ask your operator")
    raise Forbidden("customer managers cannot manage other users; ask your partner")


def see_order(principal: Principal, order: LicenceOrder) -> None:
    if (
        principal.role is Role.OPERATOR
        or principal.is_partner_manager_of(order.partner_id)
        or principal.is_customer_manager_of(order.customer_id)
    ):
        return
    raise NotFound(f"licence order {order.id} not found")


def decide_order(principal: Principal, order: LicenceOrder) -> Actor:
    """Assign and reject are the partner's decisions."""
    see_order(principal, order)
    if not principal.is_partner_manager_of(order.partner_id):
        raise Forbidden("only the partner's managers may assign or reject a licence order")
    return principal.actor
