"""Search attributes an operator filters by in the Temporal Web UI. Ids only: no names or emails."""

import uuid

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

PARTNER_ID = SearchAttributeKey.for_keyword("PartnerId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")

ALL_KEYS = (PARTNER_ID, CUSTOMER_ID, ORDER_STATUS)


def for_customer(partner_id: uuid.UUID, customer_id: uuid.UUID) -> TypedSearchAttributes:
    """For a customer's licence terms and imports (orders also carry their status)."""
    return TypedSearchAttributes(
        [SearchAttributePair(PARTNER_ID, str(partner_id)), SearchAttributePair(CUSTOMER_ID, str(customer_id))]
    )


def for_order(partner_id: uuid.UUID, customer_id: uuid.UUID, status: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(PARTNER_ID, str(partner_id)),
            SearchAttributePair(CUSTOMER_ID, str(customer_id)),
            SearchAttributePair(ORDER_STATUS, status),
        ]
    )
