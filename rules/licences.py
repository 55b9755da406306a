"""Licences and learners: statuses, the all-or-nothing allocation check, and when a term's reminders fall."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from rules.durations import add_duration, parse_duration, subtract_duration
from rules.errors import InsufficientLicences


class LicenceStatus(StrEnum):
    AVAILABLE = "available"
    ALLOCATED = "allocated"
    EXPIRED = "expired"


class LearnerStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    UNLICENSED = "unlicensed"


class LearnerSource(StrEnum):
    MANUAL = "manual"
    CSV = "csv"
    SCIM = "scim"


class BlockKind(StrEnum):
    PREMIUM = "premium"
    TRIAL = "trial"


# Allocation by a manager is for learners who hold no licence; new learners take one automatically.
ALLOCATABLE = (LearnerStatus.EXPIRED, LearnerStatus.UNLICENSED)


def check_allocation(*, asked: int, available: int) -> None:
    """Allocation is all or nothing: every chosen learner gets a licence, or none does."""
    if asked > available:
        raise InsufficientLicences(
            f"asked {asked}, available {available}: not enough licences for every chosen learner, so none was "
            "allocated; request more licences or choose fewer learners"
        )


def term_end(start: datetime, term: str) -> datetime:
    """A block's `expires_at`: its start plus the term in calendar months (P12M) or exact time (P14D, PT30S)."""
    return add_duration(start, parse_duration(term))


@dataclass(frozen=True)
class Reminder:
    """A renewal reminder: `offset` (as written in the settings, e.g. P30D) before the block expires."""

    offset: str
    at: datetime


def renewal_reminders(expires_at: datetime, offsets: list[str], *, starts_at: datetime) -> list[Reminder]:
    """The reminders that fall inside the term, earliest first. A reminder before the term began (a 14-day
    trial has no 30-day reminder) is not sent."""
    # The offsets a term's workflow captured in its input: accepted when captured, so not refused by a later limit.
    reminders = []
    for offset in offsets:
        try:
            at = subtract_duration(expires_at, parse_duration(offset, bounded=False))
        except (OverflowError, ValueError):  # before year 1: before any term began, so never sent
            continue
        reminders.append(Reminder(offset=offset, at=at))
    return sorted((r for r in reminders if r.at > starts_at), key=lambda r: r.at)
