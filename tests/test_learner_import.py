"""CSV Import: Excel's files, bad rows reported by row number, a second import of the same file creating nobody,
caps, and automatic licences while any are free."""

import asyncio
import unicodedata
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from licensing.config import Settings
from tests.factories import Tenant
from tests.test_api_learners import licences_for


def csv_of(*lines: str, newline: str = "\r\n", bom: bool = True, encoding: str = "utf-8") -> bytes:
    text = newline.join(lines) + newline
    return (b"\xef\xbb\xbf" if bom and encoding == "utf-8" else b"") + text.encode(encoding)


async def upload(api: httpx.AsyncClient, tenant: Tenant, content: bytes, expect: int = 202) -> Any:
    response = await api.post(
        f"/customers/{tenant.customer_id}/learner-imports",
        files={"file": ("staff.csv", content, "text/csv")},
        headers=tenant.customer_manager.headers,
    )
    assert response.status_code == expect, response.text
    return response.json()


async def finished(api: httpx.AsyncClient, tenant: Tenant, started: Any, within_seconds: float = 120) -> Any:
    url = f"/customers/{tenant.customer_id}/learner-imports/{started['id']}"
    deadline = asyncio.get_running_loop().time() + within_seconds
    while True:
        progress = (await api.get(url, headers=tenant.customer_manager.headers)).json()
        if progress["status"] == "finished":
            return progress
        assert asyncio.get_running_loop().time() < deadline, f"the import did not finish: {progress}"
        await asyncio.sleep(0.1)


async def test_new_learners_take_free_licences_and_the_rest_are_unlicensed(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    await licences_for(api, tenant, 2)
    done = await finished(
        api,
        tenant,
        await upload(
            api, tenant, csv_of("email,name", "ann@example.com,Ann", "bob@example.com,Bob", "cy@example.com,Cy")
        ),
    )
    assert {k: done[k] for k in ("total_rows", "processed_rows", "created", "licensed", "unlicensed", "failed")} == {
        "total_rows": 3,
        "processed_rows": 3,
        "created": 3,
        "licensed": 2,
        "unlicensed": 1,
        "failed": 0,
    }


async def test_what_excel_writes_is_read(api: httpx.AsyncClient, tenant: Tenant) -> None:
    content = csv_of(
        " E-Mail ; Full Name ", '"ann@example.com";"Ann; of Cleves"', 'BOB@example.com;"Bob ""the builder"""', ""
    )
    done = await finished(api, tenant, await upload(api, tenant, content))
    listed = await api.get(f"/customers/{tenant.customer_id}/learners", headers=tenant.customer_manager.headers)
    assert sorted((le["email"], le["name"]) for le in listed.json()["items"]) == [
        ("ann@example.com", "Ann; of Cleves"),
        ("bob@example.com", 'Bob "the builder"'),
    ]
    assert done["created"] == 2


async def test_a_windows_1252_file_keeps_its_accents(api: httpx.AsyncClient, tenant: Tenant) -> None:
    await finished(
        api, tenant, await upload(api, tenant, csv_of("email,name", "jose@example.com,José", encoding="cp1252"))
    )
    listed = await api.get(f"/customers/{tenant.customer_id}/learners", headers=tenant.customer_manager.headers)
    assert [le["name"] for le in listed.json()["items"]] == ["José"]


async def test_bad_rows_are_reported_by_row_and_the_rest_imported(api: httpx.AsyncClient, tenant: Tenant) -> None:
    await api.post(
        f"/customers/{tenant.customer_id}/learners",
        json={"email": "old@example.com", "name": "Old"},
        headers=tenant.customer_manager.headers,
    )
    done = await finished(
        api,
        tenant,
        await upload(
            api,
            tenant,
            csv_of(
                "email,name",
                "good@example.com,Good",
                "not-an-email,Bad",
                ",No Email",
                "GOOD@example.com,Twice",
                "old@example.com,Old",
            ),
        ),
    )
    assert (done["created"], [e["row"] for e in done["errors"]]) == (1, [3, 4, 5, 6])
    assert [e["message"].split(" ")[0:2] for e in done["errors"]] == [
        ["email", "'not-an-email'"],
        ["email", "is"],
        ["good@example.com", "is"],
        ["old@example.com", "is"],
    ]


async def test_importing_the_same_file_again_creates_nobody(api: httpx.AsyncClient, tenant: Tenant) -> None:
    content = csv_of("email,name", "ann@example.com,Ann", "bob@example.com,Bob")
    await finished(api, tenant, await upload(api, tenant, content))
    again = await finished(api, tenant, await upload(api, tenant, content))
    assert (again["created"], again["failed"]) == (0, 2)


@pytest.mark.parametrize(
    "content",
    [b"", b"name\r\nAnn\r\n", b"email,name\r\n", b"\xef\xbb\xbf\r\n\r\n"],
    ids=["empty", "no email column", "no rows", "blank lines"],
)
async def test_a_file_without_learners_is_422(api: httpx.AsyncClient, tenant: Tenant, content: bytes) -> None:
    refused = await upload(api, tenant, content, expect=422)
    assert refused["detail"]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\x8f\x81", "the file is a zip archive"),
        (b"email,name\r\nq1@premco.example,Bj\x81rn\r\n", "the file is not UTF-8, UTF-16 or Windows-1252 text"),
    ],
    ids=["a workbook", "bytes no text has"],
)
async def test_a_file_that_is_not_csv_text_is_422_saying_what_to_upload(
    api: httpx.AsyncClient, tenant: Tenant, content: bytes, said: str
) -> None:
    refused = await upload(api, tenant, content, expect=422)
    assert refused["detail"].startswith(said) and "save the sheet as 'CSV UTF-8'" in refused["detail"]
    # The connection is still good for the next request.
    assert (
        await api.get(f"/customers/{tenant.customer_id}/learners", headers=tenant.customer_manager.headers)
    ).is_success


@pytest.mark.parametrize(
    ("content", "row"),
    [
        (b"email,name\r\n" + b"a@example.com,Ann\r\n" * 5000 + b"b@example.com,B\x00b\r\n", 5002),
        ("email,name\r\nb@example.com,B\x00b\r\n".encode("utf-16"), 2),
    ],
    ids=["past the first 64 KB", "in UTF-16"],
)
async def test_a_nul_character_in_a_row_is_422_naming_the_row(
    api: httpx.AsyncClient, tenant: Tenant, content: bytes, row: int
) -> None:
    """Stored as it was on SQLite (a learner named with a NUL, which the API refuses), refused on PostgreSQL with
    a message that named nothing to fix."""
    refused = await upload(api, tenant, content, expect=422)
    assert refused["detail"].startswith(f"row {row} holds a NUL character")


async def test_a_nul_character_in_the_files_name_is_left_out(api: httpx.AsyncClient, tenant: Tenant) -> None:
    part = b'Content-Disposition: form-data; name="file"; filename="staff\x00.csv"\r\nContent-Type: text/csv'
    response = await api.post(
        f"/customers/{tenant.customer_id}/learner-imports",
        content=b"--b\r\n" + part + b"\r\n\r\nemail,name\r\nnul-name@example.com,Ann\r\n--b--\r\n",
        headers={**tenant.customer_manager.headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert (response.status_code, response.json()["filename"]) == (202, "staff.csv"), response.text


async def test_the_import_is_for_the_customers_side_only(api: httpx.AsyncClient, tenant: Tenant) -> None:
    other = uuid.uuid4()
    response = await api.post(
        f"/customers/{other}/learner-imports",
        files={"file": ("a.csv", b"email\r\na@b.c\r\n", "text/csv")},
        headers=tenant.customer_manager.headers,
    )
    assert response.status_code == 404


class TestCaps:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"import_max_bytes": 200, "import_max_rows": 3})

    async def test_a_file_over_the_byte_cap_is_413(self, api: httpx.AsyncClient, tenant: Tenant) -> None:
        rows = [f"learner{n}@example.com,Learner {n}" for n in range(10)]
        await upload(api, tenant, csv_of("email,name", *rows), expect=413)

    async def test_a_file_over_the_row_cap_is_422_and_imports_nobody(
        self, api: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        refused = await upload(api, tenant, csv_of("email", "a@x.io", "b@x.io", "c@x.io", "d@x.io"), expect=422)
        listed = await api.get(f"/customers/{tenant.customer_id}/learners", headers=tenant.customer_manager.headers)
        assert ("more than 3 rows" in refused["detail"], listed.json()["items"]) == (True, [])


async def test_an_address_spelt_another_unicode_way_is_the_learner_already_there(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    """`lée@example.com` added by hand (NFC, as typed) and the same address in a file saved with a combining
    accent (NFD, as macOS writes it) are one person: one learner, one licence."""
    await licences_for(api, tenant, 2)
    typed = unicodedata.normalize("NFC", "lée@example.com")
    added = await api.post(
        f"/customers/{tenant.customer_id}/learners",
        json={"email": typed, "name": "Lée"},
        headers=tenant.customer_manager.headers,
    )
    assert added.status_code == 201, added.text
    content = csv_of("email,name", f"{unicodedata.normalize('NFD', typed)},Lée")
    done = await finished(api, tenant, await upload(api, tenant, content))
    listed = (
        await api.get(f"/customers/{tenant.customer_id}/learners", headers=tenant.customer_manager.headers)
    ).json()
    assert (done["created"], len(listed["items"])) == (0, 1), done
    assert [e["message"] for e in done["errors"]] == [f"{typed} is already a learner of this customer"]


async def test_an_address_at_a_domain_spelt_in_punycode_is_the_learner_already_there(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    added = await api.post(
        f"/customers/{tenant.customer_id}/learners",
        json={"email": "bob@xn--exmple-cua.com", "name": "Bob"},
        headers=tenant.customer_manager.headers,
    )
    content = csv_of("email,name", "bob@exämple.com,Bob", "Bob@XN--EXMPLE-CUA.COM,Bob")
    done = await finished(api, tenant, await upload(api, tenant, content))
    listed = await _learners(api, tenant)
    assert (added.status_code, done["created"], [item["email"] for item in listed["items"]]) == (
        201,
        0,
        ["bob@exämple.com"],
    )


async def test_an_email_column_is_taken_before_a_username_column(api: httpx.AsyncClient, tenant: Tenant) -> None:
    """A directory export with both: `username` holds `jdoe`, `email` the address."""
    content = csv_of("username,email,name", "jdoe,jane@example.com,Jane", "rroe,rick@example.com,Rick")
    done = await finished(api, tenant, await upload(api, tenant, content))
    listed = (
        await api.get(f"/customers/{tenant.customer_id}/learners", headers=tenant.customer_manager.headers)
    ).json()
    assert (done["created"], sorted(item["email"] for item in listed["items"])) == (
        2,
        ["jane@example.com", "rick@example.com"],
    )
    only_usernames = csv_of("username,name", "ann@example.com,Ann")  # a column of UPNs, and no other
    assert (await finished(api, tenant, await upload(api, tenant, only_usernames)))["created"] == 1


async def _learners(api: httpx.AsyncClient, tenant: Tenant) -> Any:
    response = await api.get(f"/customers/{tenant.customer_id}/learners", headers=tenant.customer_manager.headers)
    assert response.status_code == 200, response.text
    return response.json()


_REFUSE_ROW = {
    "sqlite": [
        "CREATE TRIGGER refuse_row BEFORE INSERT ON learners WHEN NEW.name = 'Ann Refused' "
        "BEGIN SELECT RAISE(ABORT, 'the database failed mid-batch'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name = 'Ann Refused' "
        "THEN RAISE EXCEPTION 'the database failed mid-batch'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_row BEFORE INSERT ON learners FOR EACH ROW EXECUTE FUNCTION refuse_row()",
    ],
}
_ACCEPT_ROWS = {
    "sqlite": ["DROP TRIGGER refuse_row"],
    "postgresql": ["DROP TRIGGER refuse_row ON learners", "DROP FUNCTION refuse_row()"],
}


async def _run(sessions: async_sessionmaker[AsyncSession], statements: dict[str, list[str]]) -> None:
    async with sessions.begin() as session:
        for statement in statements[session.get_bind().dialect.name]:
            await session.execute(text(statement))


async def _last_failure(handle: WorkflowHandle[Any, Any]) -> str:
    """The failure of the import's batch as the Web UI shows it, once its first attempt has failed."""
    for _ in range(200):
        pending = (await handle.describe()).raw_description.pending_activities
        if pending and pending[0].HasField("last_failure"):
            return str(pending[0].last_failure)
        await asyncio.sleep(0.1)
    raise AssertionError("the batch did not fail")


async def test_a_database_failure_mid_batch_shows_no_learners_address_or_name_in_the_imports_history(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await _run(sessions, _REFUSE_ROW)
    try:
        started = await upload(api, tenant, csv_of("email,name", "ann.refused@example.com,Ann Refused"))
        handle = dev_server.client.get_workflow_handle(f"learner-import-{started['id']}")
        shown = await _last_failure(handle)
    finally:
        await _run(sessions, _ACCEPT_ROWS)
    await finished(api, tenant, started)  # retried once the database accepts the row
    history = (await handle.fetch_history()).to_json()
    assert "the database failed mid-batch" in shown
    assert not any(personal in text for personal in ("ann.refused", "Ann Refused") for text in (shown, history))
