"""Reading a learners CSV as Excel writes it: UTF-8 with or without a BOM (or Windows-1252, or UTF-16 with a BOM),
`\\r\\n`, `,` or `;` (or tab) between fields, quoted fields, and a header row in any case and spacing. Rows stream
out one at a time, so a large file is read in bounded memory. A file that is not such text is refused with what
it seems to be (a workbook uploaded instead of its CSV is the usual mistake)."""

import codecs
import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from rules.errors import InvalidInput

# The headers an email column goes by, best first: a directory export often has a username column too (a UPN, or
# just "jdoe"), which is the email column only when no column says email.
EMAIL_HEADERS = (
    frozenset({"email", "e-mail", "email address", "e-mail address"}),
    frozenset({"mail"}),
    frozenset({"username", "user name"}),
)
NAME_HEADERS = {"name", "full name", "display name", "displayname", "fullname"}
_CHUNK = 1 << 16


@dataclass(frozen=True)
class CsvRow:
    row: int  # as a spreadsheet numbers it: the header is row 1
    email: str
    name: str


# What a file that is not CSV text starts with, and what it is: the usual mistake is the spreadsheet itself.
_NOT_TEXT = {
    b"PK\x03\x04": "a zip archive (an Excel .xlsx workbook is one)",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook",
    b"%PDF": "a PDF document",
}
_SAVE_AS_CSV = "save the sheet as 'CSV UTF-8' (or 'CSV') and upload that"


def _decodes(stream: BinaryIO, encoding: str) -> UnicodeDecodeError | None:
    decoder = codecs.getincrementaldecoder(encoding)()
    stream.seek(0)
    try:
        while chunk := stream.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return None
    except UnicodeDecodeError as problem:
        return problem
    finally:
        stream.seek(0)


def _encoding(stream: BinaryIO) -> str:
    """UTF-8 (a BOM is dropped) if every byte decodes as UTF-8; UTF-16 with its BOM (Excel's "Unicode text"); else
    Windows-1252 (Excel's "CSV" on Windows). Anything else is refused: a binary file, or bytes no such text has."""
    stream.seek(0)
    start = stream.read(_CHUNK)
    stream.seek(0)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        kind = next((kind for magic, kind in _NOT_TEXT.items() if start.startswith(magic)), None)
        if kind is None and b"\x00" in start:
            kind = "not text (it holds NUL bytes)"
        if kind is not None:
            raise InvalidInput(f"the file is {kind}, not a CSV file: {_SAVE_AS_CSV}")
        if _decodes(stream, "utf-8") is None:
            return "utf-8-sig"
        encoding = "cp1252"
    problem = _decodes(stream, encoding)
    if problem is not None:
        byte = problem.object[problem.start : problem.start + 1]
        raise InvalidInput(
            f"the file is not UTF-8, UTF-16 or Windows-1252 text (it holds the byte {byte!r}): {_SAVE_AS_CSV}"
        )
    return encoding


def _dialect(first_line: str) -> str:
    counts = {sep: first_line.count(sep) for sep in (",", ";", "\t")}
    return max(counts, key=lambda sep: counts[sep])


def _normalise(header: str) -> str:
    return " ".join(header.replace("\ufeff", "").strip().lower().replace("_", " ").split())


def read_rows(stream: BinaryIO, *, max_rows: int) -> Iterator[CsvRow]:
    """Yield each non-blank data row. Refuses (InvalidInput) a file without an email column or with more than
    `max_rows` data rows."""
    text = io.TextIOWrapper(stream, encoding=_encoding(stream), newline="")
    try:
        first = text.readline()
        if not first.strip():
            raise InvalidInput("the file is empty: the first row must be a header with email and name columns")
        separator = _dialect(first)
        header = [_normalise(cell) for cell in next(csv.reader([first], delimiter=separator))]
        email_at = next((header.index(h) for names in EMAIL_HEADERS for h in header if h in names), None)
        name_at = next((i for i, h in enumerate(header) if h in NAME_HEADERS), None)
        if email_at is None:
            raise InvalidInput(f"no email column in the header ({_shown(header)}); name one 'email'")
        count = 0
        for number, cells in _records(csv.reader(text, delimiter=separator)):
            if not any(cell.strip() for cell in cells):
                continue
            count += 1
            if count > max_rows:
                raise InvalidInput(f"the file has more than {max_rows} rows; split it into smaller files")
            row = CsvRow(row=number, email=_cell(cells, email_at), name=_cell(cells, name_at))
            if "\x00" in row.email + row.name:  # past the start that `_encoding` looks at, or written in UTF-16
                raise InvalidInput(f"row {number} holds a NUL character, which no CSV text has: {_SAVE_AS_CSV}")
            yield row
    finally:
        text.detach()


def _records(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Each record with its spreadsheet row number (the header is row 1); an unreadable one is refused."""
    for number in itertools.count(2):
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as problem:
            raise InvalidInput(f"row {number} cannot be read: {problem}") from None
        yield number, cells


def _shown(header: list[str]) -> str:
    """The header as a person can read it in a message: printable characters only, and not too long."""
    text = "".join(c if c.isprintable() else "?" for c in ", ".join(header))
    return text if len(text) <= 200 else text[:200] + "..."


def _cell(cells: list[str], at: int | None) -> str:
    return cells[at].strip() if at is not None and at < len(cells) else ""
