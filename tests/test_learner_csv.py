"""The CSV reader on its own: Excel's variants, and memory that does not grow with the file."""

import io
import tracemalloc

import pytest

from rules.errors import InvalidInput
from rules.learner_csv import CsvRow, read_rows


def rows_of(content: bytes, max_rows: int = 100) -> list[CsvRow]:
    return list(read_rows(io.BytesIO(content), max_rows=max_rows))


def test_rows_are_numbered_as_a_spreadsheet_shows_them() -> None:
    content = b"email,name\r\na@x.io,A\r\n\r\nb@x.io,B\r\n"
    assert rows_of(content) == [CsvRow(2, "a@x.io", "A"), CsvRow(4, "b@x.io", "B")]


def test_tab_separated_and_a_missing_name() -> None:
    assert rows_of(b"Name\tEMAIL\r\n\ta@x.io\r\n") == [CsvRow(2, "a@x.io", "")]


def test_more_rows_than_the_cap_is_refused() -> None:
    with pytest.raises(InvalidInput, match="more than 2 rows"):
        rows_of(b"email\na@x.io\nb@x.io\nc@x.io\n", max_rows=2)


def _peak_while_reading(rows: int) -> int:
    content = b"email,name\r\n" + b"".join(b"staff%d@example.com,Staff %d\r\n" % (n, n) for n in range(rows))
    stream = io.BytesIO(content)
    tracemalloc.start()
    for _ in read_rows(stream, max_rows=rows):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_reading_fifty_thousand_rows_takes_no_more_memory_than_five_thousand() -> None:
    small, large = _peak_while_reading(5_000), _peak_while_reading(50_000)
    assert large < small * 1.5 + 256 * 1024  # streaming: the peak does not follow the row count


def test_excels_unicode_text_is_read() -> None:
    """Excel's "Unicode text": UTF-16 with its BOM, tab-separated."""
    content = "Email\tName\r\nzoe@x.io\tZoë Ørsted\r\n".encode("utf-16")
    assert rows_of(content) == [CsvRow(2, "zoe@x.io", "Zoë Ørsted")]


def test_windows_1252_is_read() -> None:
    assert rows_of("email;name\r\nb@x.io;Björn Æbelø\r\n".encode("cp1252")) == [CsvRow(2, "b@x.io", "Björn Æbelø")]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (
            b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)),
            "the file is a zip archive (an Excel .xlsx workbook is one)",
        ),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "the file is an old Excel .xls workbook"),
        (b"%PDF-1.7\n" + bytes(range(256)), "the file is a PDF document"),
        (b"email,name\n\x00\x01\x02", "the file is not text (it holds NUL bytes)"),
        # Neither UTF-8 nor Windows-1252: bytes Windows-1252 leaves undefined (0x81, 0x8d, 0x8f, 0x90, 0x9d).
        (
            b"email,name\nq1@premco.example,Bj\x81rn\n",
            "the file is not UTF-8, UTF-16 or Windows-1252 text (it holds the byte b'\\x81')",
        ),
    ],
)
def test_a_file_that_is_not_csv_text_is_refused_with_what_it_seems_to_be(content: bytes, said: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        rows_of(content)
    assert str(refused.value).startswith(said) and str(refused.value).endswith(
        "save the sheet as 'CSV UTF-8' (or 'CSV') and upload that"
    )


def test_a_header_without_an_email_column_is_shown_printable_and_short() -> None:
    with pytest.raises(InvalidInput) as refused:
        rows_of(b"\x07name," + b"x" * 300 + b"\nA,B\n")
    message = str(refused.value)
    assert message.startswith("no email column in the header (?name, xxx") and "\x07" not in message
    assert message.endswith("...); name one 'email'") and len(message) < 260
