"""What text the service stores: no NUL character (PostgreSQL refuses one) and nothing that is not Unicode text
(half a UTF-16 pair, or bytes of a command line that are not UTF-8); names and references also on one line, since
they go into email subjects and lists, where a line break would cut them. The API's schemas and the CLI both ask
here."""

import unicodedata

from rules.errors import InvalidInput


def storable_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "must be Unicode text (it holds a lone surrogate, or bytes that are not UTF-8)"
    return None


def one_line_problem(text: str) -> str | None:
    if any(unicodedata.category(character) in ("Cc", "Zl", "Zp") for character in text):
        return "must be one line, without line breaks, tabs or other control characters"
    return None


def one_line(text: str, what: str, *, max_length: int = 200) -> str:
    """`text` without its surrounding spaces, as a name or a reference is stored; InvalidInput naming `what`
    when it cannot be one."""
    stripped = text.strip()
    if not stripped:
        problem: str | None = "must not be empty"
    elif len(stripped) > max_length:
        problem = f"must be at most {max_length} characters (it has {len(stripped)})"
    else:
        problem = storable_problem(stripped) or one_line_problem(stripped)
    if problem is not None:
        raise InvalidInput(f"{what} {problem}")
    return stripped
