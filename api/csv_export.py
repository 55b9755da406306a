"""CSV that a spreadsheet opens safely: a cell that starts like a formula is prefixed with a quote, so Excel
shows it as text instead of running it (OWASP's CSV injection advice)."""

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def _lines(rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([safe_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


async def csv_chunks(header: Sequence[str], batches: AsyncIterable[Iterable[Sequence[object]]]) -> AsyncIterator[str]:
    """The header, then the CSV of each batch of rows as it comes: a response sent while its rows are still read."""
    yield _lines([header])
    async for rows in batches:
        yield _lines(rows)
