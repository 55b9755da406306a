"""Settings from the environment (and `.env`), named as in DESIGN.md ("Running it")."""

from functools import lru_cache

from aiosmtplib.email import parse_address
from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from db.session import async_url
from rules.durations import parse_duration, parse_duration_list


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LICENSING_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///var/licensing.db"
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "licensing"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_timeout_seconds: float = 30.0
    mail_from: str = "Partner Licensing <licensing@localhost>"
    licence_term: str = "P12M"
    trial_term: str = "P14D"
    renewal_reminders: str = "P30D,P7D"
    order_reminder_after: str = "P2D"
    # How often a running worker repairs what a write cut in two left behind (licensing/reconcile.py), besides at
    # its start: a trial customer, an upload or an upgrade committed while Temporal was briefly away.
    reconcile_every: str = "PT10M"
    max_order_quantity: int = 10_000
    trial_licences: int = 5  # a trial customer's licences when its partner names no number
    import_max_bytes: int = 20 * 1024 * 1024  # a learners CSV larger than this is refused (413)
    import_max_rows: int = 100_000  # ... and one with more data rows (422)
    import_batch_size: int = 500
    max_json_bytes: int = 1024 * 1024  # a JSON (or SCIM) request body larger than this is refused (413)
    max_open_orders_per_customer: int = 20  # requested orders waiting at once, so nobody floods a partner's inbox
    # The worker's Prometheus endpoint (the Temporal SDK's worker metrics); empty turns it off.
    worker_metrics_address: str = "127.0.0.1:9464"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """`sqlite:///PATH` or `postgresql://...`; anything else stops every program at start, naming the setting
        (the value itself is not repeated: it may hold a password)."""
        try:
            make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("not a database URL: use sqlite:///PATH or postgresql://...") from None
        async_url(value)  # a ValueError naming the database it does not support
        return value

    @field_validator("mail_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        """The sender every email goes out from, checked as the SMTP client checks it before each message (else
        each email's activity would fail on it, again and again, and no email would go out)."""
        try:
            address = parse_address(value)
        except ValueError:
            address = ""
        if "@" not in address:
            raise ValueError(
                f"{value!r} is not a sender address: write it as Name <address@example.com> (a name with a comma "
                'in double quotes: "Acme, Inc" <address@example.com>) or as address@example.com'
            )
        return value

    @field_validator("licence_term", "trial_term", "order_reminder_after", "reconcile_every")
    @classmethod
    def _one_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("renewal_reminders")
    @classmethod
    def _duration_list(cls, value: str) -> str:
        parse_duration_list(value)
        return value

    @property
    def renewal_reminder_offsets(self) -> list[str]:
        """`P30D,P7D` -> ["P30D", "P7D"], as the licence-term workflow takes them."""
        return [offset.strip().upper() for offset in self.renewal_reminders.split(",") if offset.strip()]


@lru_cache
def get_settings() -> Settings:
    """The settings; a bad value stops the program with a message naming its variable (not a traceback)."""
    try:
        return Settings()
    except ValidationError as error:
        raise SystemExit(f"bad settings, nothing started:\n{refusals(error)}") from None


def refusals(error: ValidationError) -> str:
    """One line per refused setting: `LICENSING_LICENCE_TERM: 'P12X' is not an ISO 8601 duration ...`."""
    lines = []
    for problem in error.errors():
        name = "LICENSING_" + "_".join(str(part) for part in problem["loc"]).upper()
        lines.append(f"  {name}: {problem['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)
