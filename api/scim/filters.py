"""The filters a directory sends (RFC 7644 3.4.2.2), as far as Entra ID uses them: `eq` on userName, externalId,
id and the work email, joined by `and`."""

import re
from dataclasses import dataclass

from api.scim.errors import ScimError

_CLAUSE = re.compile(
    r'^\s*(?P<attr>[A-Za-z][\w.:]*(?:\[type eq "work"\](?:\.value)?)?)\s+eq\s+"(?P<value>(?:[^"\\]|\\.)*)"\s*$',
    re.IGNORECASE,
)
_ATTRIBUTES = {
    "username": "user_name",
    "externalid": "external_id",
    "id": "id",
    "emails": "email",
    "emails.value": "email",
    'emails[type eq "work"].value': "email",
    'emails[type eq "work"]': "email",
}


@dataclass(frozen=True)
class Equals:
    field: str  # user_name, external_id, id or email
    value: str


def parse(text: str | None) -> list[Equals]:
    """`userName eq "a" and externalId eq "b"` -> [Equals(user_name, a), Equals(external_id, b)]."""
    if text is None or not text.strip():
        return []
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(part)
        attribute = match["attr"].lower() if match else ""
        attribute = attribute.removeprefix("urn:ietf:params:scim:schemas:core:2.0:user:")
        if match is None or attribute not in _ATTRIBUTES:
            raise ScimError(
                400,
                f"unsupported filter {text!r}: use eq on userName, externalId, id or emails, joined by and",
                "invalidFilter",
            )
        clauses.append(Equals(_ATTRIBUTES[attribute], match["value"].replace('\\"', '"')))
    return clauses
