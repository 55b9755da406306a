"""The training report of a customer with many learners is sent as it is read from the database: the API never
holds a whole customer's history (rows, objects and the CSV text) in memory at once, so a large customer's export
cannot exhaust the API's memory."""

import asyncio
import csv
import io
import tracemalloc
import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Learner, TrainingRecord
from tests.factories import Tenant

LEARNERS = 6000
RECORDS_EACH = 3


async def _learners_with_records(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> None:
    now = datetime.now(UTC)
    learners = [
        {
            "id": uuid.uuid4(),
            "customer_id": tenant.customer_id,
            "email": f"learner-{i}@example.com",
            "name": f"Learner {i}",
            "licence_status": "unlicensed",
            "source": "csv",
            "created_at": now,
        }
        for i in range(LEARNERS)
    ]
    records = [
        {
            "id": uuid.uuid4(),
            "learner_id": learner["id"],
            "customer_id": tenant.customer_id,
            "course": f"Course {n}",
            "completed_at": now,
            "score": 80,
            "created_at": now,
        }
        for learner in learners
        for n in range(RECORDS_EACH)
    ]
    async with sessions.begin() as session:
        await session.execute(insert(Learner), learners)
        await session.execute(insert(TrainingRecord), records)


async def _export(app: FastAPI, tenant: Tenant) -> tuple[int, int, int]:
    """GET the report straight through ASGI, counting what is sent and keeping none of it: (status, bytes, peak
    memory the API took while answering)."""
    sent = {"status": 0, "bytes": 0}
    path = f"/api/v1/customers/{tenant.customer_id}/reports/training.csv"
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {tenant.customer_manager.token}".encode())],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }

    requested, done = asyncio.Event(), asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not requested.is_set():
            requested.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays until the whole answer is sent
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            sent["bytes"] += len(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    tracemalloc.start()
    try:
        await app(scope, receive, send)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return sent["status"], sent["bytes"], peak


async def test_a_large_customers_training_report_is_sent_without_holding_it_whole_in_memory(
    app: FastAPI, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await _learners_with_records(sessions, tenant)

    status, size, peak = await _export(app, tenant)

    assert status == 200
    assert size > 1_500_000  # 18,000 rows of about a hundred bytes
    # Held whole (each row an object, then the CSV text), the report took some thirty times its size.
    assert peak < 4 * size, f"the API took {peak:,} bytes to send a report of {size:,}"


async def test_learners_without_an_email_are_told_apart_and_their_records_kept_together(
    api: httpx.AsyncClient, scim: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Directory users without a mailbox have no email: the report names them by userName and id, lists them after
    the learners with one (on SQLite as on PostgreSQL), and keeps each one's records together, in order."""
    ids = {}
    for user_name in ("zed.nomail", "amy.nomail"):
        created = await scim.post(
            "/Users",
            json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, "active": True},
        )
        assert created.status_code == 201, created.text
        ids[user_name] = created.json()["id"]
    mailed = await api.post(
        f"/customers/{tenant.customer_id}/learners",
        json={"email": "zoe@example.com", "name": "Zoe"},
        headers=tenant.customer_manager.headers,
    )
    ids["zoe@example.com"] = mailed.json()["id"]
    for user_name, month in (("zed.nomail", 1), ("amy.nomail", 2), ("zed.nomail", 3), ("zoe@example.com", 4)):
        recorded = await api.post(
            f"/customers/{tenant.customer_id}/learners/{ids[user_name]}/training-records",
            json={"course": f"Course {month}", "completed_at": f"2026-0{month}-01T10:00:00Z", "score": 80},
            headers=tenant.customer_manager.headers,
        )
        assert recorded.status_code == 201, recorded.text
    report = await api.get(
        f"/customers/{tenant.customer_id}/reports/training.csv", headers=tenant.customer_manager.headers
    )
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert [(r["learner_email"], r["learner_user_name"], r["course"]) for r in rows] == [
        ("zoe@example.com", "", "Course 4"),
        ("", "amy.nomail", "Course 2"),
        ("", "zed.nomail", "Course 1"),
        ("", "zed.nomail", "Course 3"),
    ]
    assert [r["learner_id"] for r in rows] == [
        ids[n] for n in ("zoe@example.com", "amy.nomail", "zed.nomail", "zed.nomail")
    ]
