"""Settings, read from the environment (prefix ``SPLITLAB_``) and built explicitly.

Nothing here runs at import time: ``Settings()`` is constructed by ``create_app()`` and by the
CLI, so tests and embedding applications can pass their own values.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from splitlab.errors import ConfigurationError

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True when ``host`` names an address on this machine only (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Every Splitlab setting; each is documented in the README's settings table."""

    model_config = SettingsConfigDict(env_prefix="SPLITLAB_", extra="ignore")

    home: Path = Field(
        default=Path("./splitlab-data"),
        description="Data directory: SQLite app store, DuckDB warehouse and the secret key.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the app store. Default: SQLite file splitlab.db in HOME.",
    )
    warehouse_url: str | None = Field(
        default=None,
        description="URL of the event warehouse. Default: DuckDB file warehouse.duckdb in HOME.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Signs session cookies and CSRF tokens. Default: generated in HOME.",
    )
    auth: Literal["on", "off"] = Field(
        default="on",
        description="'off' makes every request a local admin; refused unless HOST is loopback.",
    )
    host: str = Field(default="127.0.0.1", description="Address the server binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the server listens on.")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    warehouse_sources: Path | None = Field(
        default=None,
        description="JSON/YAML file mapping existing tables (Parquet, PostgreSQL, any Ibis "
        "backend) onto the exposures/events schema; they replace the native tables for analysis.",
    )
    ingest_max_batch_items: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Most items accepted by POST /api/events."
    )
    ingest_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long /api/track, /api/events and /api/assign reuse an experiment "
        "lookup and an API-key check. A change made through this server (an experiment "
        "stopped, a key revoked, a user disabled) applies to its next request; one made "
        "through another server process or the CLI within this delay; 0 turns it off.",
    )
    session_idle_minutes: float = Field(
        default=60.0,
        gt=0,
        description="A dashboard session ends after this many minutes without a request.",
    )
    session_max_days: float = Field(
        default=14.0,
        gt=0,
        description="A dashboard session ends this many days after login, however active.",
    )
    session_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long a server reuses a dashboard session check. A logout, role "
        "change or disabled user applies at once on the server that made it, and within "
        "this delay on another server process or from the CLI; 0 checks every request.",
    )
    group_commit_max_items: int = Field(
        default=50_000,
        ge=1,
        description="Most facts the warehouse writer puts in one transaction.",
    )
    group_commit_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="Longest extra wait of the warehouse writer for as many requests as its "
        "previous group had, to put them in one transaction (a lone client never waits; 0: off).",
    )
    analysis_refresh_seconds: float = Field(
        default=900.0,
        ge=0,
        description="How often the server re-analyses running experiments (a cheap cache hit "
        "when no data arrived); 0 turns the background refresh off.",
    )
    analysis_top_segments: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Segment values reported by name per breakdown; rarer values are grouped "
        "as 'other'.",
    )
    llm_provider: Literal["none", "anthropic", "openai"] = Field(
        default="none",
        description="Who writes the optional LLM readout (reports with llm=true): 'anthropic' "
        "or 'openai' through their official SDKs (extra splitlab[llm]); 'none' always gives "
        "the deterministic readout.",
    )
    llm_api_key: SecretStr | None = Field(
        default=None,
        description="API key of the LLM provider. Unset: the deterministic readout is used.",
    )
    llm_model: str | None = Field(
        default=None,
        description="Model name passed to the provider (e.g. a Claude or GPT model id). "
        "Unset: the deterministic readout is used.",
    )
    llm_base_url: str | None = Field(
        default=None,
        description="Another endpoint for the provider's API (a proxy or a compatible "
        "server). Unset: the SDK's default.",
    )
    llm_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        le=300,
        description="Longest wait for an LLM readout; after it (or on any error) the "
        "deterministic readout is used.",
    )
    scheduler_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How often the server's scheduler runs: scheduled starts and stops "
        "(start_at, end_at, plan.max_days), ramp steps, guardrail auto-stop, webhook outbox. "
        "One server process runs it at a time (a lease in the app store); 0 turns it off "
        "(run `splitlab scheduler tick` from cron instead).",
    )
    webhook_url: str | None = Field(
        default=None,
        description="Where JSON notifications are POSTed (recommendation changes, auto-stops, "
        "ramp steps, decisions). Unset: no notifications.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signs each notification: X-Splitlab-Signature is sha256=HMAC-SHA256 of "
        "'{X-Splitlab-Timestamp}.{raw body}' with this secret. Unset: sent unsigned.",
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Longest wait for the webhook receiver's answer."
    )
    webhook_max_attempts: int = Field(
        default=8,
        ge=1,
        le=50,
        description="Attempts per notification before it is marked failed (retried after a "
        "non-2xx answer, a timeout or a connection error).",
    )
    webhook_retry_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="First retry delay of a notification; it doubles per attempt, capped at "
        "one hour.",
    )

    def resolved_database_url(self) -> str:
        """The app-store URL, defaulting to a SQLite file inside HOME."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'splitlab.db').resolve()}"

    def resolved_warehouse_url(self) -> str:
        """The warehouse URL, defaulting to a DuckDB file inside HOME."""
        if self.warehouse_url:
            return self.warehouse_url
        return f"duckdb:///{(self.home / 'warehouse.duckdb').resolve()}"

    def resolved_secret_key(self) -> str:
        """The secret key; generated once into HOME/secret_key (mode 0600) when not set."""
        if self.secret_key:
            return self.secret_key
        path = self.home / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.home.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key

    @property
    def auth_enabled(self) -> bool:
        return self.auth == "on"

    def check_auth_binding(self) -> None:
        """Refuse to serve without authentication on an address other machines can reach."""
        if not self.auth_enabled and not is_loopback(self.host):
            raise ConfigurationError(
                f"SPLITLAB_AUTH=off is only allowed on a loopback address, not on {self.host!r}. "
                "Bind to 127.0.0.1 or turn auth on."
            )
