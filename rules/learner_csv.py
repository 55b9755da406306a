"""Reading a learners CSV as Excel writes it: UTF-8 with or without a BOM (or Windows-1252), `\\r\\n`, `,` or `;`
(or tab) between fields, quoted fields, and a header row in any case and spacing. Rows stream out one at a time,
so a large file is read in bounded memory."""

import codecs
import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from rules.errors import InvalidInput

EMAIL_HEADERS = {"email", "e-mail", "email address", "e-mail address", "mail", "username", "user name"}
NAME_HEADERS = {"name", "full name", "display name", "displayname", "fullname"}
_CHUNK = 1 << 16


@dataclass(frozen=True)
class CsvRow:
    row: int  # as a spreadsheet numbers it: the header is row 1
    email: str
    name: str


def _encoding(stream: BinaryIO) -> str:
    """UTF-8 (a BOM is dropped) if every byte decodes as UTF-8, else Windows-1252 (Excel's "CSV" on Windows)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    stream.seek(0)
    try:
        while chunk := stream.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "cp1252"
    finally:
        stream.seek(0)


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
        email_at = next((i for i, h in enumerate(header) if h in EMAIL_HEADERS), None)
        name_at = next((i for i, h in enumerate(header) if h in NAME_HEADERS), None)
        if email_at is None:
            raise InvalidInput(f"no email column in the header ({', '.join(header)}); name one 'email'")
        count = 0
        for number, cells in _records(csv.reader(text, delimiter=separator)):
            if not any(cell.strip() for cell in cells):
                continue
            count += 1
            if count > max_rows:
                raise InvalidInput(f"the file has more than {max_rows} rows; split it into smaller files")
            yield CsvRow(row=number, email=_cell(cells, email_at), name=_cell(cells, name_at))
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


def _cell(cells: list[str], at: int | None) -> str:
    return cells[at].strip() if at is not None and at < len(cells) else ""
