"""Who acts: recorded on every change for the audit trail."""

import uuid
from enum import StrEnum

from pydantic import BaseModel


class Role(StrEnum):
    OPERATOR = "operator"
    PARTNER_MANAGER = "partner_manager"
    CUSTOMER_MANAGER = "customer_manager"
    DIRECTORY = "directory"  # the customer's directory over SCIM (AD Sync)
    SYSTEM = "system"


class Actor(BaseModel):
    """The person behind a change; `manage_mode` when a partner manager acts as a customer's manager."""

    user_id: uuid.UUID | None
    role: Role
    manage_mode: bool = False
    on_behalf_of_customer_id: uuid.UUID | None = None


SYSTEM = Actor(user_id=None, role=Role.SYSTEM)
