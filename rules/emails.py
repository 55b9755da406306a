"""Is this an email address? The verdict of `email_validator` (the same library as the API's EmailStr), made
cheap for the thousands of rows of an import: a plain address (ASCII dot-atom local part) is judged by its domain,
whose verdict is remembered; anything unusual, and every refusal, goes through the library in full."""

import re
from functools import lru_cache

import email_validator
from email_validator import EmailNotValidError, validate_email

__all__ = ["EmailNotValidError", "canonical", "email_problem", "validate_email"]

# Addresses at `.test` domains (reserved for testing by RFC 6761: nobody outside a test or staging install has one)
# are accepted, as email_validator's README shows, by taking "test" off its list of refused special-use names.
# Everything that checks an address (the API's EmailStr, SCIM, the CLI, imports) reads that list, and each
# imports this module. `.local`, `.invalid`, `.onion` and `localhost` stay refused: no mail reaches them.
if "test" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
    email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("test")

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_LOCAL_PART = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*\Z")
_LOCAL_PART_MAX = 64
_ADDRESS_MAX = 254


@lru_cache(maxsize=4096)
def _domain_is_valid(domain: str) -> bool:
    try:
        validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _plainly_valid(email: str) -> bool:
    local_part, at, domain = email.rpartition("@")
    return (
        bool(at)
        and email.isascii()
        and len(email) <= _ADDRESS_MAX
        and len(local_part) <= _LOCAL_PART_MAX
        and _PLAIN_LOCAL_PART.match(local_part) is not None
        and _domain_is_valid(domain)
    )


def email_problem(email: str) -> str | None:
    """None for a valid address; otherwise what is wrong with it, in words a person can act on."""
    if not email:
        return "email is missing"
    if _plainly_valid(email):
        return None
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as problem:
        return f"email {email!r} is not valid: {problem}"
    return None


def canonical(email: str) -> str:
    """The form in which a learner's address is stored and compared, whichever way it came (the API, SCIM, an
    import): the library's normalised address (the local part in Unicode NFC, the domain in its usual form), lower
    case. So `lée@example.com` typed on one machine and spelt with a combining accent in a file from another are one
    learner; so are `bob@xn--exmple-cua.com` and `bob@exämple.com` (the library gives a domain in Unicode). A plain
    ASCII address with no IDNA label only needs lower case; one the library refuses is left as it is, to be
    refused."""
    if _plainly_valid(email) and "xn--" not in email.lower():
        return email.lower()
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return email
