"""The one durable scheduler: scheduled starts and stops, ramp steps, guardrail auto-stop.

Its state lives in the app store, so a restarted server resumes where it was and several
server processes run it once between them:

* a lease row (``scheduler_state`` named ``scheduler``) taken or renewed by a conditional
  update at the start of every tick — the process holding it runs the tick, the others skip
  it; a runner killed with SIGKILL loses the lease when it expires;
* each piece of work is its own transaction and idempotent: a start or stop is a lifecycle
  transition that the lifecycle refuses twice; a ramp step moves ``current_step`` by a
  conditional update in the same transaction as its weights (``store.ramps``), so a crash
  between two steps neither skips nor repeats one.

A tick (:meth:`Scheduler.tick`, driven with an explicit ``now`` by tests and by
``splitlab scheduler tick`` for cron users):

1. starts scheduled experiments whose ``start_at`` has come;
2. stops running experiments at ``end_at`` or after ``plan.max_days``;
3. guardrail auto-stop: a running experiment whose latest recommendation is ``ROLLBACK``
   goes running → rolled_back (actor ``scheduler``, the reasons and evidence audited);
4. advances the ramps whose hold has passed, after checking guardrails with a fresh
   recommendation — a breach rolls the ramp back instead; between steps, a ramp whose latest
   recommendation shows a breach is rolled back too;
5. turns new audit entries into webhook deliveries (``decisions.webhooks``).

In the server it runs every ``SPLITLAB_SCHEDULER_SECONDS`` in a worker thread
(:func:`periodic_scheduler`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from splitlab.decisions.recommendation import Code, Recommendation, Stage
from splitlab.domain import Principal, Role, Status
from splitlab.errors import SplitlabError
from splitlab.store import ramps as ramp_store
from splitlab.store.audit import write_audit
from splitlab.store.experiments import experiment_keys, get_experiment, spec_from_row, transition
from splitlab.store.scheduler_state import acquire_lease, lease_holder, release_lease

if TYPE_CHECKING:
    from splitlab.services import Services

log = logging.getLogger("splitlab.scheduler")

LEASE = "scheduler"
"""The ``scheduler_state`` row whose owner runs the ticks."""
ACTOR = Principal(username="scheduler", role=Role.ADMIN)
"""Who the audit log names for the scheduler's own actions."""

Recommender = Callable[["Services", str, bool], Recommendation]
"""``(services, key, refresh) -> Recommendation``: the decision engine, replaceable in tests."""


def engine_recommendation(services: Services, key: str, refresh: bool) -> Recommendation:
    """The decision engine's recommendation for ``key`` (``refresh`` re-analyses first)."""
    from splitlab.decisions.service import recommend_experiment

    return recommend_experiment(services=services, key=key, refresh=refresh)


RAMP_SRM = "srm_critical"
"""A ramp changes the weights on purpose, and the SRM check compares the whole period's split
with the current weights: during a ramp this finding says nothing about the treatment."""


def ramp_recommendation(services: Services, key: str, refresh: bool) -> Recommendation:
    """The guardrail check before a ramp step: the engine's recommendation on fresh data
    (stored and audited as usual). When its only trust finding is the sample ratio mismatch
    the ramp's own weight changes cause, the engine runs again on the same snapshot with the
    SRM check left out of the trust gate, so the guardrails are still judged."""
    recommendation = engine_recommendation(services, key, refresh)
    trust = {r.code for r in recommendation.reasons if r.stage is Stage.TRUST}
    if recommendation.code is not Code.INVESTIGATE_INVALID_EXPERIMENT or trust != {RAMP_SRM}:
        return recommendation
    from splitlab.analysis.service import latest
    from splitlab.analysis.snapshot import CheckName
    from splitlab.decisions.engine import recommend
    from splitlab.decisions.service import resolve_policy
    from splitlab.decisions.stages import DecisionContext

    policy = resolve_policy(services=services, key=key)
    checks = [c for c in policy.trust.critical_checks if c is not CheckName.SRM]
    policy = policy.model_copy(
        update={"trust": policy.trust.model_copy(update={"critical_checks": checks})}
    )
    with services.sessions() as session:
        row = get_experiment(session=session, key=key)
        context = DecisionContext(
            status=row.status,
            now=datetime.now(UTC),
            start_at=_aware(row.start_at) if row.start_at else None,
            experiment_type=row.type,
            team=row.team or None,
        )
    return recommend(latest(services=services, key=key), policy=policy, context=context)


def guardrail_breach(recommendation: Recommendation) -> bool:
    """Whether ``recommendation`` says a guardrail is breached: ``ROLLBACK``, or
    ``HOLD_GUARDRAIL_RISK`` resting on a guardrail stage finding."""
    if recommendation.code is Code.ROLLBACK:
        return True
    return recommendation.code is Code.HOLD_GUARDRAIL_RISK and any(
        reason.stage is Stage.GUARDRAILS for reason in recommendation.reasons
    )


def breach_reason(recommendation: Recommendation) -> str:
    """The audit reason for an automatic rollback: the code and the guardrail findings."""
    findings = [r.message for r in recommendation.reasons if r.stage is Stage.GUARDRAILS]
    text = "; ".join(findings) or recommendation.summary
    return f"guardrail breach ({recommendation.code.value}): {text}"[:2000]


def breach_evidence(recommendation: Recommendation) -> dict[str, Any]:
    """What the audit keeps of the recommendation behind an automatic rollback."""
    return {
        "code": recommendation.code.value,
        "summary": recommendation.summary,
        "snapshot_id": recommendation.snapshot_id,
        "policy": recommendation.policy,
        "reasons": [
            r.model_dump(mode="json")
            for r in recommendation.reasons
            if r.stage in (Stage.TRUST, Stage.GUARDRAILS)
        ],
        "evidence": recommendation.evidence,
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def default_owner() -> str:
    """A lease owner id unique to this process: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class TickReport:
    """What one tick did (``ran`` False when another process holds the lease)."""

    ran: bool = True
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    auto_stopped: list[str] = field(default_factory=list)
    ramp_steps: list[tuple[str, int]] = field(default_factory=list)
    """(experiment, 0-based step applied)."""
    ramps_rolled_back: list[str] = field(default_factory=list)
    notifications: int = 0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``splitlab scheduler tick``)."""
        return {
            "ran": self.ran,
            "started": self.started,
            "stopped": self.stopped,
            "auto_stopped": self.auto_stopped,
            "ramp_steps": [{"experiment": k, "step": s} for k, s in self.ramp_steps],
            "ramps_rolled_back": self.ramps_rolled_back,
            "notifications": self.notifications,
            "errors": self.errors,
        }


class Scheduler:
    """One runner of the ticks; instances in several processes share the work by the lease."""

    def __init__(
        self,
        services: Services,
        *,
        owner: str | None = None,
        lease_seconds: float | None = None,
        recommender: Recommender | None = None,
        auto_stop: bool = True,
    ) -> None:
        self.services = services
        self.owner = owner or default_owner()
        interval = services.settings.scheduler_seconds
        self.lease_seconds = lease_seconds or max(60.0, 3 * interval)
        self.recommend = recommender or engine_recommendation
        self.recommend_ramp = recommender or ramp_recommendation
        self.auto_stop = auto_stop

    # -- the lease ---------------------------------------------------------------------

    def acquire(self) -> bool:
        """Take or renew the lease (wall-clock time); False when another runner holds it."""
        try:
            with self.services.sessions.begin() as session:
                return acquire_lease(
                    session=session, name=LEASE, owner=self.owner, ttl_seconds=self.lease_seconds
                )
        except SplitlabError:
            return False  # the store was busy: try again next tick

    def release(self) -> None:
        """Give the lease up (a clean shutdown), if held."""
        with self.services.sessions.begin() as session:
            release_lease(session=session, name=LEASE, owner=self.owner)

    def holder(self) -> tuple[str | None, datetime | None]:
        """The lease's owner and expiry as stored."""
        with self.services.sessions() as session:
            return lease_holder(session=session, name=LEASE)

    # -- a tick ------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> TickReport:
        """Run every due piece of work once, if this runner holds the lease. ``now`` is the
        schedule's clock (start_at, end_at, ramp holds); the lease always uses the wall
        clock."""
        if not self.acquire():
            return TickReport(ran=False)
        moment = _aware(now or datetime.now(UTC))
        report = TickReport()
        self._notify(report)  # the first tick sets the outbox cursor before doing anything
        self._start_scheduled(moment, report)
        self._stop_finished(moment, report)
        if self.auto_stop:
            self._auto_stop(report)
        self._advance_ramps(moment, report)
        self._notify(report)
        return report

    def _keys(self, status: Status) -> list[str]:
        with self.services.sessions() as session:
            return experiment_keys(session=session, statuses=[status])

    def _move(self, key: str, *, expect: Status, to: Status, reason: str) -> bool:
        """One transition in its own transaction, only from ``expect`` (idempotent)."""
        with self.services.sessions.begin() as session:
            if get_experiment(session=session, key=key).status != expect:
                return False
            transition(session=session, key=key, to=to, actor=ACTOR, reason=reason)
        return True

    def _guarded(self, report: TickReport, what: str, work: Callable[[], None]) -> None:
        """Run one piece of work; a failure is logged and reported, the tick goes on."""
        try:
            work()
        except Exception as exc:  # one experiment's problem must not stop the others
            log.warning("scheduler: %s failed: %s", what, exc, exc_info=True)
            report.errors.append(f"{what}: {exc}")

    def _start_scheduled(self, now: datetime, report: TickReport) -> None:
        for key in self._keys(Status.SCHEDULED):

            def start(key: str = key) -> None:
                with self.services.sessions() as session:
                    start_at = get_experiment(session=session, key=key).start_at
                if start_at is None or _aware(start_at) > now:
                    return
                reason = f"scheduled start_at {_aware(start_at).isoformat()} reached"
                if self._move(key, expect=Status.SCHEDULED, to=Status.RUNNING, reason=reason):
                    report.started.append(key)

            self._guarded(report, f"start {key}", start)

    def _stop_reason(self, key: str, now: datetime) -> str | None:
        with self.services.sessions() as session:
            row = get_experiment(session=session, key=key)
            spec = spec_from_row(row)
        if row.end_at is not None and _aware(row.end_at) <= now:
            return f"scheduled end_at {_aware(row.end_at).isoformat()} reached"
        max_days = spec.plan.max_days if spec.plan else None
        started = _aware(row.start_at) if row.start_at is not None else None
        if max_days and started is not None and started + timedelta(days=max_days) <= now:
            return f"plan.max_days ({max_days}) reached"
        return None

    def _stop_finished(self, now: datetime, report: TickReport) -> None:
        for key in self._keys(Status.RUNNING):

            def stop(key: str = key) -> None:
                reason = self._stop_reason(key, now)
                if reason and self._move(
                    key, expect=Status.RUNNING, to=Status.STOPPED, reason=reason
                ):
                    report.stopped.append(key)

            self._guarded(report, f"stop {key}", stop)

    def _auto_stop(self, report: TickReport) -> None:
        """Guardrail auto-stop: the latest snapshot's recommendation (the server's analysis
        refresh keeps it current; no re-analysis here) says ROLLBACK → roll back."""
        for key in self._keys(Status.RUNNING):

            def check(key: str = key) -> None:
                recommendation = self.recommend(self.services, key, False)
                if recommendation.code is not Code.ROLLBACK:
                    return
                reason = breach_reason(recommendation)
                with self.services.sessions.begin() as session:
                    if get_experiment(session=session, key=key).status != Status.RUNNING:
                        return
                    write_audit(
                        session=session,
                        entity="experiment",
                        entity_key=key,
                        action="auto_stop",
                        actor=ACTOR.username,
                        reason=reason,
                        changes=breach_evidence(recommendation),
                    )
                    transition(
                        session=session, key=key, to=Status.ROLLED_BACK, actor=ACTOR, reason=reason
                    )
                report.auto_stopped.append(key)

            self._guarded(report, f"guardrail check {key}", check)

    def _advance_ramps(self, now: datetime, report: TickReport) -> None:
        """Due ramps step after a guardrail check on fresh data; the others, between steps,
        are watched like running experiments (the latest snapshot, no re-analysis)."""
        with self.services.sessions() as session:
            active = [
                (r.id, r.experiment_key, r.current_step, r.next_at)
                for r in ramp_store.active_ramps(session=session)
            ]
        for ramp_id, key, step, next_at in active:
            if next_at is not None and _aware(next_at) <= now:

                def advance(ramp_id: int = ramp_id, key: str = key, step: int = step) -> None:
                    self._advance_one(ramp_id, key, step, now, report)

                self._guarded(report, f"ramp {key}", advance)
            elif self.auto_stop:

                def watch(key: str = key) -> None:
                    recommendation = self.recommend_ramp(self.services, key, False)
                    if guardrail_breach(recommendation):
                        self._roll_back(key, recommendation, report)

                self._guarded(report, f"ramp guardrail check {key}", watch)

    def _roll_back(self, key: str, recommendation: Recommendation, report: TickReport) -> None:
        with self.services.sessions.begin() as session:
            ramp_store.rollback_ramp(
                session=session,
                key=key,
                reason=breach_reason(recommendation),
                actor=ACTOR,
                evidence=breach_evidence(recommendation),
            )
        report.ramps_rolled_back.append(key)

    def _advance_one(
        self, ramp_id: int, key: str, step: int, now: datetime, report: TickReport
    ) -> None:
        """Check guardrails on a fresh analysis, then roll back or apply the next step. An
        analysis or engine failure leaves the step for the next tick (never steps blind)."""
        try:
            recommendation = self.recommend_ramp(self.services, key, True)
        except Exception as exc:
            with self.services.sessions.begin() as session:
                ramp_store.note_ramp_error(session=session, ramp_id=ramp_id, error=str(exc))
            raise
        if guardrail_breach(recommendation):
            self._roll_back(key, recommendation, report)
            return
        with self.services.sessions.begin() as session:
            moved = ramp_store.advance_ramp(
                session=session, ramp_id=ramp_id, expected_step=step, actor=ACTOR, now=now
            )
        if moved is not None and moved.current_step == step + 1:
            report.ramp_steps.append((key, step + 1))

    def _notify(self, report: TickReport) -> None:
        from splitlab.decisions.webhooks import enqueue_events

        def notify() -> None:
            report.notifications += enqueue_events(services=self.services)

        self._guarded(report, "webhook outbox", notify)


def scheduler_status(*, services: Services) -> dict[str, Any]:
    """Who holds the scheduler's lease and until when, and the webhook outbox by state."""
    from splitlab.store.webhooks import delivery_counts

    with services.sessions() as session:
        owner, until = lease_holder(session=session, name=LEASE)
        counts = delivery_counts(session=session)
    return {
        "lease": {"owner": owner, "expires_at": until.isoformat() if until else None},
        "interval_seconds": services.settings.scheduler_seconds,
        "webhooks": {"url_set": bool(services.settings.webhook_url), "deliveries": counts},
    }


async def scheduler_loop(scheduler: Scheduler, interval: float, stop: asyncio.Event) -> None:
    """Every ``interval`` seconds until ``stop`` is set, one tick in a worker thread (the
    first after one interval, as the analysis refresh does); an error is logged and the loop
    goes on."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        try:
            report = await asyncio.to_thread(scheduler.tick)
            if report.errors:
                log.warning("scheduler tick: %d error(s): %s", len(report.errors), report.errors)
        except Exception:
            log.exception("scheduler tick failed")


SHUTDOWN_WAIT_SECONDS = 30.0
"""How long a server shutting down waits for a tick in progress to finish."""


@contextlib.asynccontextmanager
async def periodic_scheduler(services: Services) -> AsyncIterator[Scheduler | None]:
    """Run the scheduler for the lifetime of the block (nothing when
    ``SPLITLAB_SCHEDULER_SECONDS`` is 0). On the way out a tick in progress may finish (its
    work is idempotent either way) and the lease is given up."""
    interval = services.settings.scheduler_seconds
    if interval <= 0:
        yield None
        return
    scheduler = Scheduler(services)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler_loop(scheduler, interval, stop))
    try:
        yield scheduler
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=SHUTDOWN_WAIT_SECONDS)
        except TimeoutError:
            log.warning("scheduler: a tick was still running at shutdown")
        with contextlib.suppress(Exception):
            await asyncio.to_thread(scheduler.release)
