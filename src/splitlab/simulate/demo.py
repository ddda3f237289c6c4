"""``splitlab demo``: a realistic organisation seeded from the scenarios.

Twenty experiments across four teams, in every lifecycle state and of every type, with
reviews (by reviewer accounts who neither created nor own them), notes and transitions
spread over the past six months, and data from the scenarios for every experiment that ran.
Everything goes through the store's audited service functions (back-dated with ``at=``) and
the bulk import path; entries made by the seeding itself carry the actor ``demo``.
Seeding is idempotent: an experiment that exists is left alone.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from splitlab.domain import ExperimentSpec, Principal, ReviewDecision, Role, Status
from splitlab.errors import NotFoundError
from splitlab.simulate.generator import SimulatedData, generate
from splitlab.simulate.run import import_simulated, save_truth
from splitlab.simulate.scenario import load_scenario

if TYPE_CHECKING:
    from splitlab.services import Services

DEMO = Principal(username="demo", role=Role.ADMIN)
"""The actor of everything the seeding does on its own behalf."""
REVIEWERS = ("demo-maya", "demo-sam")
OWNERS = {"growth": "demo-alex", "web": "demo-priya", "ml-platform": "demo-jordan"}
OWNERS["platform"] = "demo-lee"

S = Status
PATHS: dict[Status, tuple[Status, ...]] = {
    S.DRAFT: (),
    S.REVIEW: (S.REVIEW,),
    S.SCHEDULED: (S.REVIEW, S.SCHEDULED),
    S.RUNNING: (S.REVIEW, S.RUNNING),
    S.STOPPED: (S.REVIEW, S.RUNNING, S.STOPPED),
    S.READOUT: (S.REVIEW, S.RUNNING, S.STOPPED, S.READOUT),
    S.ROLLING_OUT: (S.REVIEW, S.RUNNING, S.STOPPED, S.READOUT, S.ROLLING_OUT),
    S.SHIPPED: (S.REVIEW, S.RUNNING, S.STOPPED, S.READOUT, S.SHIPPED),
    S.KILLED: (S.REVIEW, S.RUNNING, S.STOPPED, S.READOUT, S.KILLED),
    S.ROLLED_BACK: (S.REVIEW, S.RUNNING, S.ROLLED_BACK),
}
"""The moves from draft to each final state."""


@dataclass(frozen=True)
class DemoExperiment:
    key: str
    scenario: str
    team: str
    status: Status
    started_days_ago: int
    """When it started running (or is scheduled to start, for negative values)."""
    days: int = 14
    units: int = 8_000
    name: str = ""
    type: str | None = None
    notes: tuple[str, ...] = ()
    changes_requested: str = ""
    """A first review that asked for changes, before the approval."""
    reasons: dict[str, str] = field(default_factory=dict)
    predicted_probability: float | None = None
    """The team's stated chance that the primary metric wins (the hypothesis tracker)."""
    costs: tuple[float, float] | None = None
    """(engineering cost, run cost per day) in USD (the cost-benefit view)."""


EXPERIMENTS: tuple[DemoExperiment, ...] = (
    # growth
    DemoExperiment(
        "checkout-redesign-abc",
        "multivariant",
        "growth",
        S.RUNNING,
        10,
        days=10,
        units=12_000,
        notes=("Both redesigns look ahead on day 3; not reading before the planned 10 days.",),
        predicted_probability=0.55,
        costs=(30_000, 200),
    ),
    DemoExperiment(
        "guided-onboarding",
        "global_positive",
        "growth",
        S.SHIPPED,
        160,
        units=60_000,  # the scenario's size: at 8,000 its clear win read as under-powered
        notes=("Conversion +10% across all countries; shipping to 100%.",),
        reasons={"shipped": "clear win on conversion, revenue flat"},
        predicted_probability=0.7,
        costs=(24_000, 150),
    ),
    DemoExperiment(
        "local-payment-methods",
        "segment_only_win",
        "growth",
        S.ROLLING_OUT,
        40,
        units=30_000,
        notes=("Only DE moves: rolling out to DE first.",),
        reasons={"rolling_out": "win in DE, neutral elsewhere"},
        predicted_probability=0.5,
        costs=(60_000, 300),
    ),
    DemoExperiment(
        "premium-bundles",
        "heavy_tail_revenue",
        "growth",
        S.READOUT,
        25,
        notes=("Uncapped revenue is dominated by three whales; read the capped metric.",),
        predicted_probability=0.45,
        costs=(18_000, 120),
    ),
    DemoExperiment("saved-lists", "delayed_effect", "growth", S.RUNNING, 12, days=12),
    DemoExperiment(
        "onboarding-checklist",
        "global_positive",
        "growth",
        S.DRAFT,
        -5,
        name="Onboarding checklist",
    ),
    # web
    DemoExperiment(
        "rich-product-pages",
        "guardrail_harm",
        "web",
        S.KILLED,
        120,
        notes=("Conversion is up but page load +15% breaches the 5% guardrail.",),
        reasons={"killed": "latency guardrail breached"},
        changes_requested="Add page load as a guardrail before we start.",
        predicted_probability=0.65,
        costs=(40_000, 200),
    ),
    DemoExperiment(
        "landing-redirect",
        "srm_invalid",
        "web",
        S.ROLLED_BACK,
        70,
        units=80_000,  # the scenario's size: at 30,000 a 3% loss is p = 0.014, no SRM finding
        notes=("SRM: treatment has 3% fewer units than expected. The redirect drops some users.",),
        reasons={"rolled_back": "sample ratio mismatch: results cannot be trusted"},
        predicted_probability=0.4,
        costs=(8_000, 100),
    ),
    DemoExperiment(
        "green-buy-button",
        "low_power_noisy",
        "web",
        S.KILLED,
        95,
        days=7,
        units=4_000,
        reasons={"killed": "inconclusive and under-powered; not worth more traffic"},
        predicted_probability=0.3,
        costs=(2_000, 50),
    ),
    DemoExperiment("feed-redesign", "novelty_effect", "web", S.RUNNING, 9, days=9),
    DemoExperiment(
        "search-autocomplete", "global_positive", "web", S.REVIEW, -3, name="Search autocomplete"
    ),
    DemoExperiment(
        "aa-calibration-q3",
        "aa_null",
        "web",
        S.STOPPED,
        60,
        notes=("A/A as expected: nothing significant, SRM clean.",),
    ),
    # ml-platform
    DemoExperiment(
        "distilled-ranker",
        "ml_model_comparison",
        "ml-platform",
        S.READOUT,
        30,
        units=6_000,
        notes=("Cost -40% and p95 latency -35%, but CTR and quality drop. Discuss trade-off.",),
        predicted_probability=0.35,
        costs=(50_000, 600),
    ),
    DemoExperiment(
        "recs-v2",
        "ratio_metric",
        "ml-platform",
        S.SHIPPED,
        140,
        reasons={"shipped": "revenue per session +7%"},
        predicted_probability=0.6,
        costs=(90_000, 900),
    ),
    DemoExperiment(
        "support-prompt-steps",
        "prompt_ab",
        "ml-platform",
        S.RUNNING,
        7,
        days=7,
        changes_requested="State the token budget as a guardrail margin.",
    ),
    DemoExperiment(
        "summary-prompt-v2", "prompt_ab", "ml-platform", S.SCHEDULED, -7, name="Summary prompt v2"
    ),
    # platform
    DemoExperiment(
        "edge-config-v2",
        "latency_regression",
        "platform",
        S.ROLLED_BACK,
        50,
        units=6_000,
        reasons={"rolled_back": "mean latency +30%, above the 10% margin"},
        predicted_probability=0.25,
        costs=(15_000, 400),
    ),
    DemoExperiment(
        "payments-4-2-canary",
        "canary_regression",
        "platform",
        S.RUNNING,
        3,
        days=3,
        units=20_000,
        notes=("Canary error rate is about 3x stable: watching closely.",),
    ),
    DemoExperiment(
        "cheaper-image-cdn",
        "aa_null",
        "platform",
        S.SHIPPED,
        100,
        name="Cheaper image CDN",
        type="cost_optimization",
        reasons={"shipped": "no measurable change for users; saves 30% on egress"},
        predicted_probability=0.1,
        costs=(12_000, 250),
    ),
    DemoExperiment(
        "spot-batch-inference",
        "canary_regression",
        "platform",
        S.DRAFT,
        -10,
        name="Spot instances for batch inference",
        type="cost_optimization",
    ),
)


@dataclass
class DemoReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    events: int = 0
    exposures: int = 0
    seconds: float = 0.0


def _ensure_users(services: Services) -> None:
    from splitlab.store.users import create_user, get_user

    wanted = [(name, Role.REVIEWER) for name in REVIEWERS]  # owners are names only
    with services.sessions.begin() as session:
        for username, role in wanted:
            try:
                get_user(session=session, username=username)
            except NotFoundError:
                create_user(
                    session=session,
                    username=username,
                    password=secrets.token_urlsafe(18),  # demo accounts: nobody logs in
                    role=role,
                    actor=DEMO.username,
                )


def _spec(item: DemoExperiment, start: datetime) -> tuple[ExperimentSpec, Any]:
    scenario = load_scenario(item.scenario)
    spec = scenario.spec(item.key)
    update: dict[str, Any] = {
        "team": item.team,
        "owner": OWNERS[item.team],
        "start_at": start,
        "seed": item.key,
    }
    if item.name:
        update["name"] = item.name
    if item.type:
        update["type"] = item.type
    if item.predicted_probability is not None:
        update["predicted_probability"] = item.predicted_probability
    if item.costs is not None:
        engineering, per_day = item.costs
        update["costs"] = {"engineering": engineering, "run_per_day": per_day, "currency": "USD"}
    return ExperimentSpec.model_validate(spec.model_dump() | update), scenario


def _exists(services: Services, key: str) -> bool:
    from splitlab.store.experiments import get_experiment

    with services.sessions() as session:
        try:
            get_experiment(session=session, key=key)
        except NotFoundError:
            return False
    return True


@dataclass
class _Plan:
    """One demo experiment's dates, spec and moves, worked out before anything is written."""

    item: DemoExperiment
    spec: ExperimentSpec
    scenario: Any
    start: datetime
    created: datetime
    moments: dict[Status, datetime]
    path: tuple[Status, ...]

    @property
    def runs(self) -> bool:
        return S.RUNNING in self.path

    @property
    def owner(self) -> Principal:
        return Principal(username=OWNERS[self.item.team], role=Role.EDITOR)


def _plan(item: DemoExperiment, now: datetime) -> _Plan:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight - timedelta(days=item.started_days_ago)
    if 0 < item.started_days_ago <= item.days:  # still running: its data ends last midnight
        start = midnight - timedelta(days=item.days)
    created = min(start - timedelta(days=6), now - timedelta(days=4))
    end = start + timedelta(days=item.days)
    moments = {
        S.REVIEW: created + timedelta(days=2),
        S.SCHEDULED: created + timedelta(days=4),
        S.RUNNING: start,
        S.STOPPED: end,
        S.READOUT: end + timedelta(days=1),
        S.ROLLING_OUT: end + timedelta(days=3),
        S.SHIPPED: end + timedelta(days=8),
        S.KILLED: end + timedelta(days=2),
        S.ROLLED_BACK: start + timedelta(days=max(1, item.days // 2)),
    }
    latest = now - timedelta(minutes=1)
    moments = {status: min(moment, latest) for status, moment in moments.items()}
    spec, scenario = _spec(item, start)
    return _Plan(item, spec, scenario, start, created, moments, PATHS[item.status])


def _until_data(services: Services, plan: _Plan) -> None:
    """Create the experiment and move it as far as running (or to its final state when it
    never ran), with its first note and its reviews."""
    from splitlab.store import experiments as repo
    from splitlab.store import metrics as metrics_repo

    item, key, moments = plan.item, plan.item.key, plan.moments
    reviewer = Principal(username=REVIEWERS[len(key) % 2], role=Role.REVIEWER)
    with services.sessions.begin() as session:
        for definition in plan.scenario.metrics:
            metrics_repo.upsert_metric(session=session, definition=definition, actor=DEMO)
        repo.create_experiment(session=session, spec=plan.spec, actor=DEMO, at=plan.created)
        repo.add_note(
            session=session,
            key=key,
            author=plan.owner,
            body=f"Scenario: {plan.scenario.description}.",
            at=plan.created + timedelta(hours=2),
        )
        for to in plan.path:
            if to in (S.STOPPED, S.ROLLED_BACK):
                return  # data goes in while it runs; the rest after
            leaving_review = to is S.SCHEDULED or (to is S.RUNNING and S.SCHEDULED not in plan.path)
            if leaving_review and item.changes_requested:
                repo.review(
                    session=session,
                    key=key,
                    reviewer=reviewer,
                    decision=ReviewDecision.REQUEST_CHANGES,
                    comment=item.changes_requested,
                    at=moments[S.REVIEW] + timedelta(hours=3),
                )
                repo.transition(
                    session=session,
                    key=key,
                    to=S.REVIEW,
                    actor=DEMO,
                    reason="changes made",
                    at=moments[S.REVIEW] + timedelta(hours=20),
                )
            if leaving_review:
                repo.review(
                    session=session,
                    key=key,
                    reviewer=reviewer,
                    decision=ReviewDecision.APPROVE,
                    comment="Hypothesis, metrics and plan look right.",
                    at=moments[S.REVIEW] + timedelta(days=1),
                )
            repo.transition(
                session=session,
                key=key,
                to=to,
                actor=DEMO,
                reason=item.reasons.get(to.value, _REASONS.get(to, "")),
                at=moments[to],
            )


def _after_data(services: Services, plan: _Plan) -> None:
    """The moves after running (stop, readout, decision) and the owner's notes."""
    from splitlab.store import experiments as repo

    item, key = plan.item, plan.item.key
    rest = plan.path[plan.path.index(S.RUNNING) + 1 :] if plan.runs else ()
    noted_at = plan.moments[rest[0]] if rest else plan.start + timedelta(days=2)
    with services.sessions.begin() as session:
        for to in rest:
            repo.transition(
                session=session,
                key=key,
                to=to,
                actor=DEMO,
                reason=item.reasons.get(to.value, _REASONS.get(to, "")),
                at=plan.moments[to],
            )
        for j, body in enumerate(item.notes):
            repo.add_note(
                session=session,
                key=key,
                author=plan.owner,
                body=body,
                at=min(noted_at + timedelta(hours=1 + j), plan.moments[S.SHIPPED]),
            )


def _data(plan: _Plan, now: datetime) -> SimulatedData:
    item = plan.item
    days = max(1, min(item.days, (now - plan.start).days))
    return generate(
        plan.scenario,
        units=item.units,
        days=days,
        seed=plan.scenario.seed,
        key=item.key,
        start=plan.start,
    )


_REASONS = {
    S.REVIEW: "ready for review",
    S.SCHEDULED: "approved; starts on schedule",
    S.RUNNING: "launched",
    S.STOPPED: "reached the planned duration",
    S.READOUT: "results in",
    S.ROLLING_OUT: "rolling out gradually",
    S.SHIPPED: "shipped to everyone",
    S.KILLED: "not worth shipping",
    S.ROLLED_BACK: "rolled back",
}


def seed_demo(
    services: Services,
    *,
    analyze: bool = True,
    now: datetime | None = None,
    experiments: Sequence[DemoExperiment] = EXPERIMENTS,
) -> DemoReport:
    """Seed the demo organisation (idempotent: existing experiments are left alone), then
    analyse the experiments that have data so their snapshots exist.

    Three passes keep it fast: every experiment is created and moved up to running; the data
    of all of them goes in with one import per kind; then they move on to their final state.
    """
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    report = DemoReport()
    _ensure_users(services)
    plans = []
    for item in experiments:
        if _exists(services, item.key):
            report.existing.append(item.key)
        else:
            plans.append(_plan(item, now))
    for plan in plans:
        _until_data(services, plan)
    runs = [_data(plan, now) for plan in plans if plan.runs]
    if runs:
        exposures, events = import_simulated(services, runs)
        report.exposures, report.events = exposures.accepted, events.accepted
        for data in runs:
            save_truth(services, data)
    for plan in plans:
        _after_data(services, plan)
        report.created.append(plan.item.key)
    if analyze:
        _analyze(services, [plan.item.key for plan in plans if plan.runs])
    report.seconds = time.perf_counter() - started
    return report


def _analyze(services: Services, keys: list[str]) -> None:
    from splitlab.analysis import analyze
    from splitlab.warehouse import WarehouseBusyError

    for key in keys:
        try:
            analyze(services=services, key=key)
        except WarehouseBusyError:  # a running server owns the warehouse: it analyses itself
            return
    _recommend(services, keys)


def _recommend(services: Services, keys: list[str]) -> None:
    """Store the decision engine's recommendation for each analysed experiment, so the fleet
    view's badges ("ship now", "roll back", …) and the decisions' links read from the start
    (the engine runs on the snapshots just stored; nothing is analysed again)."""
    from splitlab.decisions.service import recommend_experiment

    for key in keys:
        recommend_experiment(services=services, key=key)
