"""The import's cheap email check gives the verdict of `email_validator` itself, on plain and on odd addresses."""

import unicodedata

import pytest
from email_validator import EmailNotValidError, validate_email

from rules.emails import canonical, email_problem

ADDRESSES = [
    "staff1@example.com",
    "first.last+tag@sub.example.co.uk",
    "o'brien@example.ie",
    "x@example",
    "a@localhost",
    "a@example.local",
    "a@example.test",
    "a@example.invalid",
    "a@example.onion",
    "a@-example.com",
    "a@example-.com",
    "a@exa_mple.com",
    "a@example..com",
    "a@.example.com",
    "a@example.com.",
    "a@123.123.123.123",
    "a@[123.123.123.123]",
    "a@example.c",
    "a@example.123",
    ".a@example.com",
    "a.@example.com",
    "a..b@example.com",
    '"quoted local"@example.com',
    'quoted"inside@example.com',
    "no-at-sign.example.com",
    "two@at@example.com",
    "@example.com",
    "a@",
    "a b@example.com",
    "ünïcode@example.com",
    "a@bücher.example",
    "a@xn--bcher-kva.example",
    "a@xn--bcher.example",
    "x" * 64 + "@example.com",
    "x" * 65 + "@example.com",
    "a@" + "x" * 63 + ".com",
    "a@" + "x" * 64 + ".com",
    "a@" + ".".join(["x" * 60] * 4) + ".com",
    "a@" + ".".join(["x" * 61] * 4) + ".com",
    "a@example.com\n",
    "tab\t@example.com",
    "a@example.com ",
]


def _library_verdict(email: str) -> bool:
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@pytest.mark.parametrize("email", ADDRESSES)
def test_the_cheap_check_agrees_with_the_library(email: str) -> None:
    assert (email_problem(email) is None) == _library_verdict(email)


def test_a_refusal_says_what_is_wrong() -> None:
    assert email_problem("") == "email is missing"
    assert "is not valid" in (email_problem("a..b@example.com") or "")


def test_an_address_is_kept_in_one_form_however_it_was_spelt() -> None:
    composed, decomposed = (
        unicodedata.normalize("NFC", "Lée@Example.COM"),
        unicodedata.normalize("NFD", "Lée@Example.COM"),
    )
    assert composed != decomposed
    assert canonical(composed) == canonical(decomposed) == unicodedata.normalize("NFC", "lée@example.com")
    assert canonical("Ann.Lee@Example.COM") == "ann.lee@example.com"
    assert canonical("not an address") == "not an address"  # left to be refused as it was written
    assert (
        canonical("Bob@XN--exmple-cua.com") == canonical("bob@exämple.com") == "bob@exämple.com"
    )  # as EmailStr keeps it
