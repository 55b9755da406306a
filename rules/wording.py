"""Words that agree with a number, for emails and what operators read in the Temporal Web UI."""


def counted(quantity: int, noun: str, plural: str | None = None) -> str:
    """`1 licence`, `3 licences`; `plural` for a noun that does not just take an s."""
    return f"{quantity} {noun if quantity == 1 else plural or noun + 's'}"


def agreeing(quantity: int, one: str, many: str) -> str:
    """The word that agrees with `quantity`: "1 licence expires", "3 licences expire"."""
    return one if quantity == 1 else many
