"""SQLAlchemy 2 table models of the app store. Portable across SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class ExperimentRow(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    hypothesis: Mapped[str] = mapped_column(Text, default="")
    predicted_outcome: Mapped[str] = mapped_column(Text, default="")
    predicted_probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    costs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    type: Mapped[str] = mapped_column(String(40), index=True)
    team: Mapped[str] = mapped_column(String(100), default="", index=True)
    owner: Mapped[str] = mapped_column(String(100), default="")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    coverage: Mapped[float] = mapped_column(Float, default=1.0)
    seed: Mapped[str] = mapped_column(String(200))
    hash_version: Mapped[int] = mapped_column(Integer, default=2)
    namespace: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), index=True, default="draft")
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cloned_from: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    variants: Mapped[list[VariantRow]] = relationship(
        back_populates="experiment",
        cascade="all, delete-orphan",
        order_by="VariantRow.position",
        lazy="selectin",
    )
    metric_links: Mapped[list[ExperimentMetricRow]] = relationship(
        back_populates="experiment",
        cascade="all, delete-orphan",
        order_by="ExperimentMetricRow.position",
        lazy="selectin",
    )


class VariantRow(Base):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("experiment_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    weight: Mapped[float] = mapped_column(Float)
    is_control: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[Any] = mapped_column(JSON, nullable=True)

    experiment: Mapped[ExperimentRow] = relationship(back_populates="variants")


class MetricRow(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20))
    event: Mapped[str] = mapped_column(String(200))
    filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    value_field: Mapped[str | None] = mapped_column(String(200), nullable=True)
    denominator_event: Mapped[str | None] = mapped_column(String(200), nullable=True)
    quantile: Mapped[float | None] = mapped_column(Float, nullable=True)
    window_start_hours: Mapped[float] = mapped_column(Float, default=0)
    window_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    capping: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    direction: Mapped[str] = mapped_column(String(20), default="increase")
    cuped_days: Mapped[int] = mapped_column(Integer, default=0)
    margin: Mapped[float | None] = mapped_column(Float, nullable=True)
    margin_scale: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """``absolute`` for a margin in the metric's units; NULL: relative (a fraction)."""
    source: Mapped[str] = mapped_column(String(16), default="events", server_default="events")
    """events, or units: the value is ``column`` of the unit table (issue 16)."""
    column: Mapped[str | None] = mapped_column(String(200), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """The current version; every change of the definition is a new one (``metric_versions``)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class MetricVersionRow(Base):
    """Every version of every metric definition, kept so a started experiment analyses the
    definition it started with."""

    __tablename__ = "metric_versions"
    __table_args__ = (UniqueConstraint("metric_key", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric_key: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExperimentMetricRow(Base):
    """Links an experiment to a metric in a role, with per-experiment overrides."""

    __tablename__ = "experiment_metrics"
    __table_args__ = (UniqueConstraint("experiment_id", "metric_key", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    metric_key: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column(Integer)
    margin: Mapped[float | None] = mapped_column(Float, nullable=True)
    margin_scale: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """``absolute`` for a margin in the metric's units; NULL: relative (a fraction)."""
    metric_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The definition version pinned when the experiment started; None: the current one."""

    experiment: Mapped[ExperimentRow] = relationship(back_populates="metric_links")


class AuditRow(Base):
    """One entry per mutation; keyed by strings so it outlives deleted experiments."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(20), index=True)
    entity_key: Mapped[str] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    via: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """How the action reached us when not with the actor's own credentials (CLI ``--as``)."""


class NoteRow(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewRequestRow(Base):
    __tablename__ = "review_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    requested_by: Mapped[str] = mapped_column(String(100))
    reviewers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReviewRow(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("review_requests.id", ondelete="CASCADE"), index=True
    )
    reviewer: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str] = mapped_column(Text, default="")
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The configuration fingerprint the decision was made on (``domain.review``)."""
    via: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKeyRow(Base):
    """An API key: only its SHA-256 is stored; ``prefix`` finds the row without the secret."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100), default="")
    scope: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    user: Mapped[UserRow] = relationship(lazy="joined")


class WebSessionRow(Base):
    """A dashboard login: the cookie carries the token, only its SHA-256 is stored here.
    Deleting the row (logout, user disabled or deleted) ends the session."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CacheVersionRow(Base):
    """A counter per group of cached state ("experiments", "access"), bumped in the same
    transaction as every change to it, so each server process notices changes made by
    another one (see ``store.versions``)."""

    __tablename__ = "cache_versions"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class SnapshotRow(Base):
    """One analysis of an experiment: the full result payload, keyed for the cache by the
    settings hash and the data watermark it was computed from."""

    __tablename__ = "analysis_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_key: Mapped[str] = mapped_column(String(100), index=True)
    settings_hash: Mapped[str] = mapped_column(String(64))
    watermark: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="ok")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class PolicyRow(Base):
    """A stored decision policy (YAML contract as JSON): ``default`` overrides the built-in
    defaults, ``team-{team}`` and ``experiment-{key}`` override it in turn."""

    __tablename__ = "policies"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RecommendationRow(Base):
    """A recommendation the engine made from one snapshot under one resolved policy; a new
    row only when the code (or its variant/segments) changes, so the rows are its history."""

    __tablename__ = "recommendations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_key: Mapped[str] = mapped_column(String(100), index=True)
    snapshot_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    policy_hash: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DecisionRow(Base):
    """A human decision (ship, kill, roll back, extend) with its rationale, following or
    overriding a recommendation; an override may wait for a reviewer's approval."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_key: Mapped[str] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(20))
    variant: Mapped[str | None] = mapped_column(String(100), nullable=True)
    segments: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    rationale: Mapped[str] = mapped_column(Text, default="")
    recommendation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recommendation_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="recorded")
    actor: Mapped[str] = mapped_column(String(100))
    approved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ramp_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """What applying the action needs and what its review said: ``ramp`` (a ship's rollout
    steps), ``days`` (an extension), ``review_comment``."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RampRow(Base):
    """A promote-winner ramp the scheduler advances: ``steps`` is a list of
    ``{"percent": …, "hold_hours": …}``; ``current_step`` moves only by a conditional
    update, so no step is skipped or repeated, whichever process runs it."""

    __tablename__ = "ramps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_key: Mapped[str] = mapped_column(String(100), index=True)
    variant: Mapped[str] = mapped_column(String(100))
    steps: Mapped[list[Any]] = mapped_column(JSON)
    current_step: Mapped[int] = mapped_column(Integer, default=-1)
    status: Mapped[str] = mapped_column(String(20), default="active")
    next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SchedulerStateRow(Base):
    """The scheduler's durable state: the runner's lease (one runner across processes) and
    cursors such as the last audit entry turned into webhook deliveries."""

    __tablename__ = "scheduler_state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    value: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDeliveryRow(Base):
    """One notification to deliver (an outbox): retried with back-off until delivered or out
    of attempts; ``event_id`` makes enqueueing idempotent."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), unique=True)
    event_type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
