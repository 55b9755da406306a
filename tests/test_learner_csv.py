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
