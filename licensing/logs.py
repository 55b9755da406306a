"""Structured logs: one JSON object a line, carrying the request id (API) or the workflow and activity ids
(worker) so one order can be followed from the HTTP call to the email."""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_TEMPORAL_FIELDS = {
    "temporal_workflow": ("workflow_id", "run_id", "workflow_type"),
    "temporal_activity": ("workflow_id", "activity_id", "activity_type", "attempt"),
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (current := request_id.get()) is not None:
            line["request_id"] = current
        for attribute, fields in _TEMPORAL_FIELDS.items():
            details = getattr(record, attribute, None)
            if isinstance(details, dict):
                line.update({field: details[field] for field in fields if field in details})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
