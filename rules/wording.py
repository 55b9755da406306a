"""Words that agree with a number, for emails and what operators read in the Temporal Web UI."""


def counted(quantity: int, noun: str, plural: str | None = None) -> str:
    """`1 licence`, `3 licences`; `plural` for a noun that does not just take an s."""
    return f"{quantity} {noun if quantity == 1 else plural or noun + 's'}"


def agreeing(quantity: int, one: str, many: str) -> str:
    """The word that agrees with `quantity`: "1 licence expires", "3 licences expire"."""
    return one if quantity == 1 else many


def size(count_of_bytes: int) -> str:
    """A size as people say it: `20 MB` (of 1024 * 1024 bytes), `20.1 MB`, `1.5 KB`, `300 bytes`."""
    for unit, step in (("MB", 1024 * 1024), ("KB", 1024)):
        if count_of_bytes >= step:
            return f"{count_of_bytes / step:.1f}".removesuffix(".0") + f" {unit}"
    return counted(count_of_bytes, "byte")
