"""The ``splitlab`` command line: thin commands over the same services as the API."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from splitlab.config import Settings
from splitlab.domain import Principal, ReviewDecision, Role, Scope
from splitlab.errors import SplitlabError

if TYPE_CHECKING:
    from splitlab.analysis.snapshot import Snapshot


def _unreachable(exc: BaseException) -> str | None:
    """What could not be reached, when ``exc`` is a network or database connection failure
    (recognised without importing httpx or SQLAlchemy)."""
    httpx, sqlalchemy_exc = sys.modules.get("httpx"), sys.modules.get("sqlalchemy.exc")
    if httpx is not None and isinstance(exc, httpx.TransportError):
        return "the server"
    if sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.OperationalError):
        return "the database"
    if isinstance(exc, ConnectionError | TimeoutError):
        return "the network peer"
    return None


class SplitlabTyper(typer.Typer):
    """The command group: a connection failure that no command turned into a
    ``SplitlabError`` is still one line on stderr and exit code 1, never a traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            peer = _unreachable(exc)
            if peer is None:
                raise
            reason = " ".join(str(exc).split())[:500] or type(exc).__name__
            typer.secho(f"error: cannot use {peer}: {reason}", fg=typer.colors.RED, err=True)
            sys.exit(1)


app = SplitlabTyper(
    help="Splitlab: experiments from hypothesis to ship/kill decision.", no_args_is_help=True
)
experiments_app = typer.Typer(help="List, show and move experiments.", no_args_is_help=True)
users_app = typer.Typer(help="Dashboard users.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
metrics_app = typer.Typer(help="Metric definitions.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(metrics_app, name="metrics")


def _services(check_schema: bool = True) -> Any:
    from splitlab.services import Services

    return Services.open(Settings(), check_schema=check_schema)


def _actor() -> Principal:
    """The CLI runs with file-system access to the stores, so it acts as an admin."""
    try:
        name = getpass.getuser()
    except Exception:
        name = "cli"
    return Principal(username=f"cli:{name}", role=Role.ADMIN)


def _fail(error: SplitlabError) -> None:
    typer.secho(f"error: {error.message}", fg=typer.colors.RED, err=True)
    if isinstance(error.details, list):
        for detail in error.details:
            if isinstance(detail, dict) and detail.get("loc") is not None:
                path = detail.get("path") or ".".join(str(p) for p in detail["loc"])
                typer.secho(f"  {path}: {detail.get('msg', '')}", err=True)
    raise typer.Exit(code=1)


def _run(fn: Any) -> Any:
    try:
        return fn()
    except SplitlabError as error:
        _fail(error)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _with_services(fn: Callable[[Any], Any]) -> Any:
    """Open the services, return ``fn(services)`` (a ``SplitlabError`` exits with its message)
    and close them again."""
    services = _run(_services)
    try:
        return _run(lambda: fn(services))
    finally:
        services.close()


@app.command()
def init() -> None:
    """Create the data directory and create or migrate the app store to the newest schema."""
    from splitlab.store.migrate import upgrade

    services = _run(lambda: _services(check_schema=False))
    revision = upgrade(services.engine)
    settings = services.settings
    typer.echo(f"Splitlab data directory: {settings.home.resolve()}")
    typer.echo(f"App store: {settings.resolved_database_url()} (schema {revision})")
    typer.echo("Next: `splitlab users create admin --role admin`, then `splitlab serve`.")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="address to bind (default SPLITLAB_HOST)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default SPLITLAB_PORT)")] = None,
) -> None:
    """Run the API and dashboard (uvicorn); HOME/server.json records the address meanwhile."""
    import uvicorn

    from splitlab.app import create_app
    from splitlab.server_address import forget_server, record_server

    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = Settings(**overrides)
    application = _run(lambda: create_app(settings))

    class RecordingServer(uvicorn.Server):
        """Writes server.json once listening and removes it as shutdown starts (uvicorn
        re-raises SIGTERM after serving, so code after ``run()`` would not run)."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                record_server(settings, host=settings.host, port=settings.port)

        async def shutdown(self, sockets: Any = None) -> None:
            forget_server(settings)
            await super().shutdown(sockets)

    typer.echo(f"Splitlab on http://{settings.host}:{settings.port}  (API docs: /docs)")
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,  # one log line per tracked event would cost more than the event
    )
    try:
        RecordingServer(config).run()
    except KeyboardInterrupt:  # pragma: no cover - as uvicorn.run
        pass
    finally:
        forget_server(settings)


@app.command("apply")
def apply_(
    file: Annotated[
        Path, typer.Option("-f", "--file", exists=True, dir_okay=False, help="YAML contract")
    ],
) -> None:
    """Create or update a draft experiment (and its metric definitions) from YAML."""
    from splitlab.contracts import apply_contract, parse_contract

    services = _run(_services)
    contract = _run(lambda: parse_contract(file.read_text()))

    def write() -> tuple[Any, str]:
        with services.sessions.begin() as session:
            row, action = apply_contract(session=session, contract=contract, actor=_actor())
            return (row.key if row is not None else None), action

    key, action = _run(write)
    typer.echo(f"{len(contract.metrics)} metric definition(s) applied")
    if key:
        typer.echo(f"experiment {key} {action}")


class ExportGroup(TyperGroup):
    """``splitlab export KEY`` stays the YAML contract export (``export contract KEY``);
    ``splitlab export mlflow KEY`` is a subcommand."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["contract", *args]
        return super().resolve_command(ctx, args)


export_app = typer.Typer(
    cls=ExportGroup,
    help="Export an experiment: `export KEY` prints its YAML contract; `export mlflow KEY` "
    "logs its snapshot and recommendation to MLflow.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")


@export_app.command("contract")
def export(key: str) -> None:
    """Print an experiment and its metric definitions as YAML (also `splitlab export KEY`)."""
    from splitlab.contracts import export_contract

    services = _run(_services)
    with services.sessions() as session:
        typer.echo(_run(lambda: export_contract(session=session, key=key)), nl=False)


@export_app.command("mlflow")
def export_mlflow(
    key: str,
    tracking_uri: Annotated[
        str, typer.Option("--tracking-uri", help="MLflow tracking URI, e.g. file:///tmp/mlruns")
    ],
    experiment_name: Annotated[
        str | None,
        typer.Option("--experiment-name", help="MLflow experiment (default splitlab/KEY)"),
    ] = None,
) -> None:
    """Log the experiment's current snapshot to MLflow (needs the mlflow extra): params
    (alpha, minimum lift, test), metrics (rates, lifts, p-values, users) and tags (decision,
    experiment key, guardrail violations); once per snapshot and policy."""
    from splitlab.decisions.mlflow_export import export_mlflow as run_export

    result = _with_services(
        lambda services: run_export(
            services=services,
            key=key,
            tracking_uri=tracking_uri,
            experiment_name=experiment_name,
        )
    )
    state = "logged" if result.created else "already logged"
    typer.echo(
        f"{state}: run {result.run_id} in MLflow experiment {result.experiment_name!r} "
        f"({result.tracking_uri})"
    )


@app.command("report")
def report(
    key: str,
    format: Annotated[str, typer.Option("--format", help="md, html, pdf, json or csv")] = "md",
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="write to this file (default: standard output)"),
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="analyse new data first and re-run the policy")
    ] = False,
    llm: Annotated[
        bool,
        typer.Option("--llm", help="add a readout by the configured LLM (SPLITLAB_LLM_*)"),
    ] = False,
) -> None:
    """Write an experiment's report: readout, recommendation and results as Markdown,
    self-contained HTML, PDF, JSON or CSV."""
    from splitlab.decisions.reports import ReportFormat, experiment_report, filename
    from splitlab.warehouse import WarehouseBusyError

    formats = [f.value for f in ReportFormat]
    if format not in formats:
        _fail(SplitlabError(f"--format must be one of {', '.join(formats)}, not {format!r}"))
    if format == "pdf" and output is None and sys.stdout.isatty():
        _fail(SplitlabError(f"a PDF is not for the terminal: add -o {filename(key, format)}"))
    services = _run(_services)
    try:
        content = experiment_report(
            services=services, key=key, format=format, refresh=refresh, llm=llm
        )
    except WarehouseBusyError:  # a running server owns the DuckDB file: ask it instead
        content = _run(
            lambda: _report_via_server(services.settings, key, format, refresh=refresh, llm=llm)
        )
    except SplitlabError as error:
        _fail(error)
    finally:
        services.close()
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
        return
    output.write_bytes(content)
    typer.echo(f"wrote {output} ({len(content):,} bytes)", err=True)


def _report_via_server(
    settings: Settings, key: str, format: str, *, refresh: bool, llm: bool
) -> bytes:
    import httpx

    from splitlab.server_address import refused, server_client, unreachable

    doing = "the warehouse file is in use by another process; fetching the report from the server"
    http, address = server_client(settings)
    try:
        with http:
            response = http.get(
                f"/api/experiments/{key}/report.{format}",
                params={"refresh": str(refresh).lower(), "llm": str(llm).lower()},
            )
    except httpx.HTTPError as exc:
        raise unreachable(address, exc, doing=doing) from exc
    if response.status_code != 200:
        raise refused(response, doing=doing, scope="read")
    return response.content


@experiments_app.command("list")
def experiments_list(
    status: str | None = None,
    team: str | None = None,
    type: str | None = None,
    q: str | None = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List experiments, newest first."""
    from splitlab.store import experiments as repo

    services = _run(_services)
    with services.sessions() as session:
        rows = [
            repo.experiment_to_dict(r)
            for r in repo.list_experiments(
                session=session, status=status, team=team, type=type, q=q
            )
        ]
    if json_:
        _print_json(rows)
        return
    if not rows:
        typer.echo("no experiments")
        return
    typer.echo(f"{'KEY':<28} {'STATUS':<12} {'TYPE':<18} {'TEAM':<12} NAME")
    for r in rows:
        typer.echo(f"{r['key']:<28} {r['status']:<12} {r['type']:<18} {r['team']:<12} {r['name']}")


@experiments_app.command("show")
def experiments_show(key: str) -> None:
    """Show one experiment as JSON."""
    from splitlab.store import experiments as repo

    services = _run(_services)
    with services.sessions() as session:
        _print_json(
            _run(lambda: repo.experiment_to_dict(repo.get_experiment(session=session, key=key)))
        )


@experiments_app.command("transition")
def experiments_transition(
    key: str, to: str, reason: Annotated[str, typer.Option(help="why (audit log)")] = ""
) -> None:
    """Move an experiment to another lifecycle state."""
    from splitlab.store import experiments as repo

    services = _run(_services)

    def move() -> str:
        target = repo.ensure_transition_target(to)
        with services.sessions.begin() as session:
            return repo.transition(
                session=session, key=key, to=target, actor=_actor(), reason=reason
            ).status

    typer.echo(f"{key} is now {_run(move)}")


@experiments_app.command("review")
def experiments_review(
    key: str,
    decision: Annotated[ReviewDecision, typer.Argument()],
    comment: Annotated[str, typer.Option(help="comment; required when reviewing your own")] = "",
    as_user: Annotated[str | None, typer.Option("--as", help="reviewer username")] = None,
) -> None:
    """Approve or request changes on an experiment in review."""
    from splitlab.store import experiments as repo
    from splitlab.store.users import get_user

    services = _run(_services)

    def act() -> str:
        with services.sessions.begin() as session:
            reviewer, via = _actor(), None
            if as_user:
                user = get_user(session=session, username=as_user)
                reviewer = Principal(username=user.username, role=Role(user.role))
                # recorded without the reviewer's credentials: the audit log says so
                via = f"local CLI --as, run by {_actor().username}"
            repo.review(
                session=session,
                key=key,
                reviewer=reviewer,
                decision=decision,
                comment=comment,
                via=via,
            )
            return repo.get_experiment(session=session, key=key).status

    typer.echo(f"{key}: {decision.value}; status {_run(act)}")


@experiments_app.command("clone")
def experiments_clone(key: str, new_key: str) -> None:
    """Clone an experiment into a new draft."""
    from splitlab.store import experiments as repo

    services = _run(_services)

    def clone() -> str:
        with services.sessions.begin() as session:
            return repo.clone_experiment(
                session=session, key=key, new_key=new_key, actor=_actor()
            ).key

    typer.echo(f"cloned {key} into draft {_run(clone)}")


@experiments_app.command("note")
def experiments_note(key: str, body: str) -> None:
    """Add a note to an experiment."""
    from splitlab.store import experiments as repo

    services = _run(_services)

    def note() -> None:
        with services.sessions.begin() as session:
            repo.add_note(session=session, key=key, author=_actor(), body=body)

    _run(note)
    typer.echo("note added")


@experiments_app.command("audit")
def experiments_audit(key: str) -> None:
    """Show the audit log of an experiment, newest first."""
    from splitlab.store.audit import audit_to_dict, list_audit

    services = _run(_services)
    with services.sessions() as session:
        for entry in map(
            audit_to_dict, list_audit(session=session, entity="experiment", entity_key=key)
        ):
            typer.echo(
                f"{entry['at'][:19]}  {entry['actor']:<16} {entry['summary']:<28} {entry['reason']}"
            )


@metrics_app.command("list")
def metrics_list() -> None:
    """List metric definitions (with the guardrail margin experiments inherit, if any)."""
    from splitlab.decisions.readout import margin_text
    from splitlab.store import metrics as repo

    services = _run(_services)
    with services.sessions() as session:
        for row in repo.list_metrics(session=session):
            source = row.event if row.source == "events" else f"units:{row.column}"
            line = f"{row.key:<24} {row.kind:<9} {source:<20} {row.direction}"
            if row.margin is not None:
                line += f"  margin {margin_text(row.margin, row.margin_scale)}"
            typer.echo(line)


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[Role, typer.Option(help="viewer, editor, reviewer or admin")] = Role.EDITOR,
    password: Annotated[str | None, typer.Option(help="prompted for when omitted")] = None,
) -> None:
    """Create a dashboard user."""
    from splitlab.store.users import create_user

    services = _run(_services)
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    def create() -> None:
        with services.sessions.begin() as session:
            create_user(
                session=session,
                username=username,
                password=password,
                role=role,
                actor=_actor().username,
            )

    _run(create)
    typer.echo(f"user {username} created with role {role.value}")


@keys_app.command("create")
def keys_create(
    scope: Annotated[Scope, typer.Option(help="ingest, read or admin")] = Scope.READ,
    user: Annotated[str, typer.Option(help="the user the key acts as")] = "admin",
    name: Annotated[str, typer.Option(help="a label")] = "",
) -> None:
    """Create an API key; it is shown once and stored only as a hash."""
    from splitlab.store.users import create_api_key

    services = _run(_services)

    def create() -> str:
        with services.sessions.begin() as session:
            return create_api_key(
                session=session, username=user, scope=scope, name=name, actor=_actor().username
            )

    key = _run(create)
    typer.echo(key)
    typer.secho("Store this key now: it is not shown again.", err=True, fg=typer.colors.YELLOW)


# ---------------------------------------------------------------- users and keys (manage)
# Each change is audited and bumps the store's cache version: a running server applies it
# within SPLITLAB_INGEST_CACHE_SECONDS (API keys) / SPLITLAB_SESSION_CACHE_SECONDS (sessions).

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
ReasonOption = Annotated[str, typer.Option(help="recorded in the audit log")]


def _user_change(change: Any, done: str) -> None:
    services = _run(_services)

    def apply() -> None:
        with services.sessions.begin() as session:
            change(session)

    _run(apply)
    typer.echo(done)


@users_app.command("list")
def users_list(as_json: JsonOption = False) -> None:
    """List users with their role, state and number of active API keys."""
    from splitlab.store import users as repo

    services = _run(_services)
    with services.sessions() as session:
        counts = repo.active_key_counts(session=session)
        items = [
            repo.user_to_dict(row, active_keys=counts.get(row.id, 0))
            for row in repo.list_users(session=session)
        ]
    if as_json:
        _print_json({"users": items})
        return
    if not items:
        typer.echo("no users (create one: splitlab users create NAME --role admin)")
    for user in items:
        state = "active" if user["active"] else "disabled"
        typer.echo(f"{user['username']:<24} {user['role']:<9} {state:<9} keys={user['activeKeys']}")


@users_app.command("set-role")
def users_set_role(
    username: str,
    role: Annotated[Role, typer.Argument(help="viewer, editor, reviewer or admin")],
    reason: ReasonOption = "",
) -> None:
    """Change a user's role (their sessions and API keys act with it at once)."""
    from splitlab.store.users import set_role

    _user_change(
        lambda session: set_role(
            session=session, username=username, role=role, actor=_actor().username, reason=reason
        ),
        f"user {username} now has role {role.value}",
    )


@users_app.command("disable")
def users_disable(username: str, reason: ReasonOption = "") -> None:
    """Disable a user: their sessions end and their API keys are refused."""
    from splitlab.store.users import set_active

    _user_change(
        lambda session: set_active(
            session=session, username=username, active=False, actor=_actor().username, reason=reason
        ),
        f"user {username} disabled",
    )


@users_app.command("enable")
def users_enable(username: str, reason: ReasonOption = "") -> None:
    """Enable a disabled user again (they log in again; unrevoked keys work again)."""
    from splitlab.store.users import set_active

    _user_change(
        lambda session: set_active(
            session=session, username=username, active=True, actor=_actor().username, reason=reason
        ),
        f"user {username} enabled",
    )


@users_app.command("delete")
def users_delete(
    username: str,
    reason: ReasonOption = "",
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a user with their sessions and API keys (the audit log keeps the record)."""
    from splitlab.store.users import delete_user

    if not yes:
        typer.confirm(f"Delete user {username} and their API keys?", abort=True)
    _user_change(
        lambda session: delete_user(
            session=session, username=username, actor=_actor().username, reason=reason
        ),
        f"user {username} deleted",
    )


@keys_app.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option(help="only this user's keys")] = None,
    as_json: JsonOption = False,
) -> None:
    """List API keys (never their secret); the id is what `keys revoke` takes."""
    from splitlab.store import users as repo

    services = _run(_services)

    def load() -> list[dict[str, Any]]:
        with services.sessions() as session:
            rows = repo.list_api_keys(session=session, username=user)
            return [repo.api_key_to_dict(row) for row in rows]

    items = _run(load)
    if as_json:
        _print_json({"keys": items})
        return
    if not items:
        typer.echo("no API keys")
    for key in items:
        state = (
            "revoked" if key["revokedAt"] else "active" if key["userActive"] else "user disabled"
        )
        typer.echo(
            f"{key['id']:<14} {key['user']:<20} {key['scope']:<7} {state:<14} "
            f"{(key['createdAt'] or '')[:19]}  {key['name']}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the id shown by `splitlab keys list`")],
    reason: ReasonOption = "",
) -> None:
    """Revoke an API key; requests with it are refused from then on."""
    from splitlab.store.users import revoke_api_key

    services = _run(_services)

    def revoke() -> bool:
        with services.sessions.begin() as session:
            return revoke_api_key(
                session=session, prefix=key_id, actor=_actor().username, reason=reason
            )

    revoked = _run(revoke)
    typer.echo(f"key {key_id} revoked" if revoked else f"key {key_id} was already revoked")


# ---------------------------------------------------------------- import (warehouse)

import_app = typer.Typer(
    help="Import exposures or events from CSV, Parquet or JSON Lines.", no_args_is_help=True
)
app.add_typer(import_app, name="import")


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            raise typer.BadParameter(f"--map takes file_column=trackField, not {pair!r}")
        mapping[source] = target
    return mapping


def _import(kind: str, file: Path, pairs: list[str], preview: bool, dry_run: bool) -> None:
    mapping = _mapping(pairs)
    services = _run(_services)

    def run() -> Any:
        return services.import_file(
            file,
            kind=kind,
            mapping=mapping,
            write=not (preview or dry_run),
            preview_rows=10 if preview else 0,
        )

    try:
        report = _run(run)
    finally:
        services.close()
    _print_report(report.to_dict())
    if report.rows and report.rejected >= report.rows:
        _fail(SplitlabError(f"every row of {file} was rejected; nothing was imported"))


def _print_report(report: dict[str, Any]) -> None:
    typer.echo(f"{report['file']}: {report['rows']:,} rows")
    if report["columns"]:
        typer.echo("columns: " + ", ".join(f"{c['name']} {c['type']}" for c in report["columns"]))
    for row in report["preview"]:
        typer.echo("  " + json.dumps(row, default=str))
    if report["written"]:
        line = f"accepted {report['accepted']:,}, duplicates {report['duplicates']:,}"
        if report.get("conflicts"):
            line += f", conflicts {report['conflicts']:,} (units exposed to a second variant)"
        typer.echo(line)
    typer.echo(f"rejected {report['rejected']:,}")
    for reason in report["reasons"]:
        examples = ", ".join(str(n) for n in reason["examples"])
        typer.echo(f"  {reason['rows']:,} × {reason['reason']} (rows {examples})")


MapOption = Annotated[
    list[str], typer.Option("--map", help="rename a column: file_column=trackField (repeatable)")
]
PreviewOption = Annotated[
    bool, typer.Option("--preview", help="show inferred types, the first rows and the report")
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="validate only, write nothing")]
FileArgument = Annotated[Path, typer.Argument(exists=True, help="a .csv, .parquet or .jsonl file")]


@import_app.command("events")
def import_events(
    file: FileArgument,
    map_: MapOption = [],  # noqa: B006 - typer reads the default
    preview: PreviewOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Import metric events (columns as in /api/track; eventType names the event)."""
    _import("events", file, map_, preview, dry_run)


@import_app.command("exposures")
def import_exposures(
    file: FileArgument,
    map_: MapOption = [],  # noqa: B006 - typer reads the default
    preview: PreviewOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Import exposures (experimentKey, variantKey, userKey, occurredAt, props)."""
    _import("exposures", file, map_, preview, dry_run)


@import_app.command("units")
def import_units(
    file: FileArgument,
    map_: Annotated[
        list[str],
        typer.Option("--map", help="the unit id column: unit_id=COLUMN (default: unit_id)"),
    ] = [],  # noqa: B006 - typer reads the default
    preview: PreviewOption = False,
    dry_run: DryRunOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Import a per-unit table (one row per unit, e.g. revenue_30d): every numeric column
    becomes a unit value that metrics with source: units and column: NAME read; a column
    imported again replaces the values of the units in the file."""
    mapping: dict[str, str] = {}
    for pair in map_:
        for part in pair.split(","):
            source, sep, target = part.partition("=")
            if not sep or not source or not target:
                raise typer.BadParameter(f"--map takes unit_id=COLUMN, not {part!r}")
            mapping[source] = target
    from splitlab.warehouse import WarehouseBusyError

    services = _run(_services)
    data: dict[str, Any]
    try:
        data = services.warehouse.import_units(
            file,
            mapping=mapping,
            write=not (preview or dry_run),
            preview_rows=10 if preview else 0,
        ).to_dict()
    except WarehouseBusyError:  # a running server owns the DuckDB file: upload it there
        data = _run(
            lambda: _import_units_via_server(
                services.settings, file, mapping, preview=preview, dry_run=dry_run
            )
        )
    except SplitlabError as error:
        _fail(error)
    finally:
        services.close()
    if as_json:
        typer.echo(json.dumps(data, default=str, indent=2))
    else:
        typer.echo(f"{data['file']}: {data['rows']:,} rows")
        typer.echo("columns: " + ", ".join(f"{c['name']} ({c['use']})" for c in data["columns"]))
        for row in data["preview"]:
            typer.echo("  " + json.dumps(row, default=str))
        if data["written"]:
            typer.echo(
                f"accepted {data['accepted']:,} units, {data['values']:,} values written"
                + (f", {data['attributes']:,} text attributes" if data.get("attributes") else "")
            )
        typer.echo(f"rejected {data['rejected']:,}")
        for reason in data["reasons"]:
            examples = ", ".join(str(n) for n in reason["examples"])
            typer.echo(f"  {reason['rows']:,} × {reason['reason']} (rows {examples})")
    if data["rows"] and data["rejected"] >= data["rows"]:
        _fail(SplitlabError(f"every row of {file} was rejected; nothing was imported"))


def _import_units_via_server(
    settings: Settings, file: Path, mapping: dict[str, str], *, preview: bool, dry_run: bool
) -> dict[str, Any]:
    """``POST /api/import/units`` on the running server that owns the DuckDB file."""
    import httpx

    from splitlab.server_address import refused, server_client, unreachable

    doing = "the warehouse file is in use by another process; importing through the server"
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("map", f"{a}:{b}") for a, b in mapping.items()
    ]
    params += [("preview", str(preview).lower()), ("dry_run", str(dry_run).lower())]
    http, address = server_client(settings, timeout=300)
    try:
        with http, file.open("rb") as body:
            response = http.post(
                "/api/import/units", files={"file": (file.name, body)}, params=params
            )
    except httpx.HTTPError as exc:
        raise unreachable(address, exc, doing=doing) from exc
    if response.status_code != 200:
        raise refused(response, doing=doing, scope="ingest")
    result: dict[str, Any] = response.json()
    return result


@app.command("assign")
def assign_units(
    experiment: Annotated[str, typer.Argument(help="experiment key")],
    units: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="CSV or Parquet file, one unit per row: ids in --unit-column, other columns "
            "are targeting attributes",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="output .csv/.parquet (default: <units>.assigned.<ext>)")
    ] = None,
    unit_column: Annotated[str, typer.Option(help="column holding the unit ids")] = "unit_id",
) -> None:
    """Assign every unit of a file with the experiment's stored config (bulk, vectorised).

    Units already exposed keep their first variant when the experiment's weights or coverage
    changed since it started (sticky bucketing, read from the warehouse). A running server
    owns an embedded DuckDB warehouse; the command then warns and assigns without sticky.
    """
    from splitlab.assignment import bulk_assign_file
    from splitlab.assignment.specs import config_from_spec
    from splitlab.store.experiments import get_experiment, spec_from_row
    from splitlab.store.live import allocation_changed

    services = _run(_services)
    with services.sessions() as session:
        row = _run(lambda: get_experiment(session=session, key=experiment))
        spec, status = spec_from_row(row), row.status
        needs_sticky = bool(allocation_changed(session=session, starts={spec.key: spec.start_at}))
    if status != "running":
        typer.echo(f"note: {experiment} is {status}; assigning with its current configuration")
    sticky = _sticky_assignments(services.settings, experiment) if needs_sticky else None
    target = out or units.with_name(f"{units.stem}.assigned{units.suffix}")
    counts = _run(
        lambda: _checked(
            lambda: bulk_assign_file(
                config_from_spec(spec),
                units,
                target,
                unit_column=unit_column,
                sticky_assignments=sticky,
            )
        )
    )
    typer.echo(f"wrote {target}")
    for variant, count in counts.items():
        typer.echo(f"{variant}: {count}")
    if sticky is not None:
        typer.echo(f"({len(sticky)} units with a stored assignment kept their variant)")


def _checked(fn: Any) -> Any:
    """Turn a file problem (missing column, bad suffix) into a clean CLI error."""
    try:
        return fn()
    except (ValueError, OSError) as exc:
        raise SplitlabError(str(exc)) from exc


def _sticky_assignments(settings: Settings, experiment: str) -> dict[str, str] | None:
    """Stored first variants of the experiment, from the warehouse opened read-only."""
    from splitlab.warehouse import Warehouse, WarehouseBusyError, load_sources
    from splitlab.warehouse.sticky import WarehouseStickyStore

    try:
        warehouse = Warehouse.open(
            settings.resolved_warehouse_url(),
            read_only=True,
            sources=load_sources(settings.warehouse_sources),
        )
    except WarehouseBusyError as exc:
        typer.secho(
            f"warning: {exc.message}. The weights or coverage of {experiment} changed since "
            "it started, so units already exposed may get another variant here than the one "
            "they saw (no sticky assignments). Stop the server, or use POST /api/assign.",
            fg=typer.colors.YELLOW,
            err=True,
        )
        return None
    try:
        return WarehouseStickyStore(warehouse).assignments(experiment)
    finally:
        warehouse.close()


@app.command()
def analyze(
    key: str,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="recompute even if data and settings are unchanged")
    ] = False,
    format: Annotated[str, typer.Option("--format", help="table, json or markdown")] = "table",
    breakdown: Annotated[
        str | None,
        typer.Option(
            "--breakdown",
            help="exploratory: break results down by one or two exposure attributes now "
            "(country,device); never stored as the experiment's snapshot",
        ),
    ] = None,
) -> None:
    """Analyse an experiment (or reuse its snapshot) and print the results."""
    from splitlab.analysis import analyze as run_analysis
    from splitlab.analysis.breakdown import breakdown as adhoc_breakdown
    from splitlab.analysis.breakdown import parse_dimensions
    from splitlab.analysis.render import render_markdown, render_table

    if format not in ("table", "json", "markdown"):
        _fail(SplitlabError(f"--format must be table, json or markdown, not {format!r}"))
    from splitlab.warehouse import WarehouseBusyError

    dimensions = _run(lambda: parse_dimensions(breakdown)) if breakdown is not None else None
    services = _run(_services)
    try:
        if dimensions:
            snapshot = adhoc_breakdown(services=services, key=key, dimensions=dimensions)
        else:
            snapshot = run_analysis(services=services, key=key, refresh=refresh)
    except WarehouseBusyError:  # a running server owns the DuckDB file: ask it instead
        if dimensions:
            from splitlab.analysis.snapshot import Snapshot

            snapshot = Snapshot.from_json(
                _run(
                    lambda: _get_via_server(
                        services.settings,
                        f"/api/experiments/{key}/results",
                        {"breakdown": ",".join(dimensions)},
                    )
                )
            )
        else:
            snapshot = _run(lambda: _analyze_via_server(services.settings, key, refresh=refresh))
    except SplitlabError as error:
        _fail(error)
    finally:
        services.close()
    if format == "json":
        _print_json(snapshot.to_json())
    elif format == "markdown":
        typer.echo(render_markdown(snapshot), nl=False)
    else:
        typer.echo(render_table(snapshot), nl=False)


def _get_via_server(settings: Settings, path: str, params: dict[str, str]) -> Any:
    """GET an API path from the running server that owns the DuckDB file (its JSON)."""
    import httpx

    from splitlab.server_address import refused, server_client, unreachable

    doing = "the warehouse file is in use by another process; asking the server"
    http, address = server_client(settings)
    try:
        with http:
            response = http.get(path, params=params)
    except httpx.HTTPError as exc:
        raise unreachable(address, exc, doing=doing) from exc
    if response.status_code != 200:
        raise refused(response, doing=doing, scope="read")
    return response.json()


@app.command()
def factorial(
    key: str, as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False
) -> None:
    """Main effects and interactions of a 2^k factorial experiment (variants with
    payload.factors): the ANOVA table per metric (anova_lm typ=3, sum-to-zero coding)."""
    from splitlab.analysis.factorial import FactorialResult, analyze_factorial
    from splitlab.analysis.factorial_render import render_factorial
    from splitlab.warehouse import WarehouseBusyError

    services = _run(_services)
    try:
        result = analyze_factorial(services=services, key=key)
    except WarehouseBusyError:
        path = f"/api/experiments/{key}/factorial"
        data = _run(lambda: _get_via_server(services.settings, path, {}))
        result = FactorialResult.model_validate(data)
    except SplitlabError as error:
        _fail(error)
    finally:
        services.close()
    if as_json:
        _print_json(result.model_dump(mode="json"))
    else:
        typer.echo(render_factorial(result))


@app.command()
def interactions(
    key: str,
    other: Annotated[str, typer.Option("--with", help="the other experiment sharing units")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Does KEY's effect differ by the arm of experiment --with? (interaction tests on the
    units both experiments share)."""
    from splitlab.analysis.factorial_render import render_interactions
    from splitlab.analysis.interactions import InteractionsResult, analyze_interactions
    from splitlab.warehouse import WarehouseBusyError

    services = _run(_services)
    try:
        result = analyze_interactions(services=services, key=key, other=other)
    except WarehouseBusyError:
        path = f"/api/experiments/{key}/interactions"
        data = _run(lambda: _get_via_server(services.settings, path, {"with": other}))
        result = InteractionsResult.model_validate(data)
    except SplitlabError as error:
        _fail(error)
    finally:
        services.close()
    if as_json:
        _print_json(result.model_dump(mode="json"))
    else:
        typer.echo(render_interactions(result))


@app.command()
def validate(
    sims: Annotated[
        int, typer.Option("--sims", min=100, help="simulated experiments per check")
    ] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="random seed (same seed, same figures)")] = 0,
    out: Annotated[Path, typer.Option("--out", help="the figures as JSON")] = Path("validity.json"),
    check: Annotated[
        list[str] | None,
        typer.Option("--check", help="run only this check (repeatable): z, welch, cuped, …"),
    ] = None,
    pipeline_runs: Annotated[
        int,
        typer.Option(
            "--pipeline-runs",
            min=0,
            help="end-to-end runs (simulate → import → analyze) per scenario; 0 skips them",
        ),
    ] = 20,
) -> None:
    """Measure false-positive rates, CI coverage and power of every statistical method by
    vectorised simulation, plus end-to-end runs of the whole pipeline on generated data;
    print a table and write the figures to --out."""
    from splitlab.simulate.validity import render_table, run_validity

    try:
        report = run_validity(sims=sims, seed=seed, checks=check, pipeline_runs=pipeline_runs)
    except ValueError as error:
        _fail(SplitlabError(str(error)))
    typer.echo(render_table(report), nl=False)
    out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    typer.echo(f"wrote {out}")


def _analyze_via_server(settings: Settings, key: str, *, refresh: bool) -> Snapshot:
    import httpx

    from splitlab.analysis.snapshot import Snapshot
    from splitlab.server_address import refused, server_client, unreachable

    doing = "the warehouse file is in use by another process; analysing through the server"
    http, address = server_client(settings)
    try:
        with http:
            response = http.post(
                f"/api/experiments/{key}/analyze", params={"refresh": str(refresh).lower()}
            )
            if response.status_code == 200:
                return Snapshot.from_json(response.json())
    except httpx.HTTPError as exc:
        raise unreachable(address, exc, doing=doing) from exc
    except ValueError as exc:  # not JSON, or not a snapshot (pydantic's error is a ValueError)
        raise refused(response, doing=doing, scope="admin") from exc
    raise refused(response, doing=doing, scope="admin")


# ---------------------------------------------------------------- simulator and demo


@app.command("scenarios")
def scenarios_list() -> None:
    """List the simulation scenarios shipped with Splitlab, one line each."""
    from splitlab.simulate import load_scenario, scenario_names

    for name in scenario_names():
        scenario = load_scenario(name)
        typer.echo(f"{name:<22} {scenario.description}")


@app.command()
def simulate(
    scenario: Annotated[
        str | None, typer.Argument(help="a scenario name (see `splitlab scenarios`)")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", exists=True, dir_okay=False, help="your own scenario YAML"),
    ] = None,
    units: Annotated[
        int | None, typer.Option(min=10, help="units (default: the scenario's)")
    ] = None,
    days: Annotated[int | None, typer.Option(min=1, max=120, help="days of data")] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="random seed (same seed, same data)")
    ] = None,
    key: Annotated[str | None, typer.Option(help="experiment key (default: scenario name)")] = None,
    start: Annotated[
        datetime | None,
        typer.Option(help="first day (UTC; default: midnight DAYS days ago)"),
    ] = None,
    export: Annotated[
        Path | None, typer.Option(file_okay=False, help="also keep the data as Parquet here")
    ] = None,
) -> None:
    """Simulate a scenario into a running experiment: metrics and experiment through the store,
    units assigned by the experiment's config, data through the import path, truth.json saved."""
    from splitlab.simulate import generate, load_scenario
    from splitlab.simulate.run import simulate_into

    if (scenario is None) == (file is None):
        _fail(SplitlabError("give a scenario name or --file, not both"))
    chosen = _run(lambda: load_scenario(file or scenario or ""))
    moment = None
    if start is not None:
        moment = start if start.tzinfo else start.replace(tzinfo=UTC)
        span = timedelta(days=days or chosen.days)
        if moment + span > datetime.now(UTC):
            _fail(SplitlabError("--start plus --days is in the future: the data would be too"))
    services = _run(_services)
    try:
        data = _run(
            lambda: generate(chosen, units=units, days=days, seed=seed, key=key, start=moment)
        )
        report = _run(lambda: simulate_into(services, data, export=export))
    finally:
        services.close()
    verb = "created" if report.created else "already running:"
    typer.echo(
        f"experiment {data.key} {verb} {data.units:,} units over {data.days} days from "
        f"{data.start:%Y-%m-%d} (seed {data.seed})"
    )
    if data.concurrent is not None:
        typer.echo(
            f"concurrent experiment {data.concurrent.key} on the same units: "
            f"splitlab interactions {data.key} --with {data.concurrent.key}"
        )
    for name, part in (("exposures", report.exposures), ("events", report.events)):
        typer.echo(
            f"{name}: accepted {part['accepted']:,}, duplicates {part['duplicates']:,}, "
            f"rejected {part['rejected']:,}"
        )
    if data.dropped:
        lost = ", ".join(f"{v} {n:,}" for v, n in data.dropped.items())
        typer.echo(f"units lost after assignment (scenario breakage): {lost}")
    if report.export_dir is not None:
        typer.echo(f"Parquet: {report.export_dir}/exposures.parquet, events.parquet")
    typer.echo(f"truth: {report.truth_path}")


@app.command()
def demo(
    reset: Annotated[
        bool,
        typer.Option(
            "--reset", help="delete the embedded app store and warehouse first (asks first)"
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask before --reset")] = False,
) -> None:
    """Seed a demo organisation: ~20 experiments of 4 teams in every state, with data,
    reviews, notes and six months of history (idempotent: existing ones are kept)."""
    from splitlab.simulate.demo import EXPERIMENTS, seed_demo
    from splitlab.store.migrate import upgrade

    settings = Settings()
    if reset:
        _reset_embedded(settings, yes=yes)
    services = _run(lambda: _services(check_schema=False))
    try:
        upgrade(services.engine)
        report = _run(lambda: seed_demo(services))
    finally:
        services.close()
    typer.echo(
        f"demo: {len(report.created)} experiment(s) seeded, {len(report.existing)} already "
        f"there (of {len(EXPERIMENTS)}); {report.exposures:,} exposures and "
        f"{report.events:,} events imported in {report.seconds:.1f} s"
    )


def _reset_embedded(settings: Settings, *, yes: bool) -> None:
    """Delete the embedded SQLite app store and DuckDB warehouse of HOME (nothing else)."""
    from splitlab.server_address import recorded_server

    if settings.database_url or settings.warehouse_url:
        _fail(SplitlabError("--reset only deletes the embedded stores of SPLITLAB_HOME"))
    if recorded_server(settings) is not None:
        _fail(SplitlabError("a server is running on this data directory: stop it first"))
    files = [settings.home / "splitlab.db", settings.home / "warehouse.duckdb"]
    files += [f.with_name(f.name + ".wal") for f in files]
    present = [f for f in files if f.exists()]
    if present and not yes:
        typer.confirm(f"Delete {', '.join(map(str, present))}?", abort=True)
    for path in present:
        path.unlink()


decisions_app = typer.Typer(
    help="Human decisions: ship, kill, roll back, extend; approve overrides.",
    no_args_is_help=True,
)
app.add_typer(decisions_app, name="decisions")


def _reviewer(session: Any, as_user: str | None) -> tuple[Principal, str | None]:
    """The CLI's admin, or ``--as`` a user (recorded as relayed by the CLI's user)."""
    if not as_user:
        return _actor(), None
    from splitlab.store.users import get_user

    user = get_user(session=session, username=as_user)
    return (
        Principal(username=user.username, role=Role(user.role)),
        f"local CLI --as, run by {_actor().username}",
    )


def _print_decision(decision: dict[str, Any]) -> None:
    what = decision["action"] + (f" {decision['variant']}" if decision["variant"] else "")
    override = (
        f" (override of {decision['recommendation_code'] or 'no recommendation'})"
        if decision["override"]
        else f" (follows {decision['recommendation_code']})"
    )
    line = f"decision {decision['id']}: {what}{override} — {decision['status']}"
    if "experiment_status" in decision:
        line += f"; experiment is {decision['experiment_status']}"
    typer.echo(line)


@decisions_app.command("record")
def decisions_record(
    key: str,
    action: Annotated[str, typer.Option(help="ship, kill, rollback or extend")],
    rationale: Annotated[str, typer.Option(help="why (required; kept in the audit log)")],
    variant: Annotated[str | None, typer.Option(help="ship: the treatment to ship")] = None,
    ramp: Annotated[
        str | None, typer.Option(help="ship: rollout percents, e.g. 5,25,50,100")
    ] = None,
    hold_hours: Annotated[
        float, typer.Option(help="ship with --ramp: hours each step is held")
    ] = 24.0,
    days: Annotated[int | None, typer.Option(help="extend: days to add")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
) -> None:
    """Record a decision on an experiment; applied at once unless the policy makes an
    override wait for a reviewer (approve it with `splitlab decisions approve`)."""
    from splitlab.decisions.actions import record_decision

    services = _run(_services)

    def steps() -> list[dict[str, Any]] | None:
        from splitlab.errors import ValidationError

        if ramp is None:
            return None
        try:
            percents = [float(part) for part in ramp.split(",")]
        except ValueError:
            raise ValidationError(
                "--ramp takes percents separated by commas, e.g. 5,25,50,100",
                details=[{"loc": ["ramp"], "msg": "comma-separated numbers"}],
            ) from None
        return [{"percent": p, "hold_hours": hold_hours} for p in percents]

    decision = _run(
        lambda: record_decision(
            services=services,
            key=key,
            action=action,
            rationale=rationale,
            actor=_actor(),
            variant=variant,
            ramp=steps(),
            days=days,
        )
    )
    if as_json:
        _print_json(decision)
    else:
        _print_decision(decision)


@decisions_app.command("list")
def decisions_list(
    key: str,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List an experiment's decisions, newest first."""
    from splitlab.decisions.actions import list_decisions

    services = _run(_services)
    decisions = _run(lambda: list_decisions(services=services, key=key))
    if as_json:
        _print_json(decisions)
        return
    for decision in decisions:
        _print_decision(decision)


@decisions_app.command("approve")
def decisions_approve(
    key: str,
    decision_id: Annotated[int, typer.Argument(help="the decision's id")],
    comment: Annotated[str, typer.Option(help="comment; required to approve your own")] = "",
    as_user: Annotated[str | None, typer.Option("--as", help="reviewer username")] = None,
    reject: Annotated[bool, typer.Option("--reject", help="reject it instead")] = False,
) -> None:
    """Approve (and so apply) a decision that awaits approval, or --reject it."""
    from splitlab.decisions.actions import approve_decision, reject_decision

    services = _run(_services)

    def act() -> dict[str, Any]:
        with services.sessions() as session:
            reviewer, via = _reviewer(session, as_user)
        review = reject_decision if reject else approve_decision
        return review(
            services=services,
            key=key,
            decision_id=decision_id,
            reviewer=reviewer,
            comment=comment,
            via=via,
        )

    _print_decision(_run(act))


# ---------------------------------------------------------------- decide and policies


@app.command()
def decide(
    key: str,
    as_json: Annotated[bool, typer.Option("--json", help="the recommendation as JSON")] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="analyse new data first and re-run the engine")
    ] = False,
) -> None:
    """What to do with an experiment now: code, label, summary and every stage's reasons."""
    from splitlab.decisions.service import recommend_experiment
    from splitlab.decisions.text import render_recommendation
    from splitlab.warehouse import WarehouseBusyError

    services = _run(_services)
    try:
        rec = recommend_experiment(services=services, key=key, refresh=refresh)
    except WarehouseBusyError:  # a running server owns the DuckDB file: ask it instead
        rec = _run(lambda: _decide_via_server(services.settings, key, refresh=refresh))
    except SplitlabError as error:
        _fail(error)
    finally:
        services.close()
    if as_json:
        _print_json(rec.to_json())
    else:
        typer.echo(render_recommendation(rec), nl=False)


def _decide_via_server(settings: Settings, key: str, *, refresh: bool) -> Any:
    import httpx

    from splitlab.decisions.recommendation import Recommendation
    from splitlab.server_address import refused, server_client, unreachable

    doing = "the warehouse file is in use by another process; deciding through the server"
    http, address = server_client(settings)
    try:
        with http:
            response = http.get(
                f"/api/experiments/{key}/recommendation",
                params={"refresh": str(refresh).lower()},
            )
            if response.status_code == 200:
                return Recommendation.model_validate(response.json())
    except httpx.HTTPError as exc:
        raise unreachable(address, exc, doing=doing) from exc
    except ValueError as exc:
        raise refused(response, doing=doing, scope="read") from exc
    raise refused(response, doing=doing, scope="read")


policy_app = typer.Typer(help="Decision policies (default, team-TEAM, experiment-KEY).")
app.add_typer(policy_app, name="policy")


@policy_app.command("get")
def policy_get(name: str) -> None:
    """Print a stored policy and what it resolves to, as JSON (the built-in default when
    ``default`` was never stored)."""
    from splitlab.decisions.service import policy_view

    _print_json(_with_services(lambda services: policy_view(services=services, name=name)))


@policy_app.command("put")
def policy_put(
    name: str,
    file: Annotated[Path, typer.Argument(help="a YAML or JSON policy document")],
) -> None:
    """Store a policy from a YAML or JSON file (a partial document over the built-in
    default); errors name the field path."""
    from splitlab.decisions.service import store_policy

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        _fail(SplitlabError(f"cannot read {file}: {error}"))
    view = _with_services(
        lambda services: store_policy(services=services, name=name, document=text, actor=_actor())
    )
    typer.echo(f"stored policy {name} (version {view['version']})")
    _print_json(view["resolved"])


ramp_app = typer.Typer(help="Promote-winner ramps (started by a ship decision).")
scheduler_app = typer.Typer(help="The scheduler (starts, stops, ramps, auto-stop, webhooks).")
app.add_typer(ramp_app, name="ramp")
app.add_typer(scheduler_app, name="scheduler")


@ramp_app.command("show")
def ramp_show(key: str, as_json: JsonOption = False) -> None:
    """Show an experiment's latest ramp: its steps, where it is, when the next is due."""
    from splitlab.decisions.rollout import show_ramp

    ramp = _with_services(lambda services: show_ramp(services=services, key=key))
    if as_json:
        _print_json(ramp)
        return
    plan = " → ".join(
        f"[{step['percent']:g}%]" if i == ramp["current_step"] else f"{step['percent']:g}%"
        for i, step in enumerate(ramp["steps"])
    )
    typer.echo(f"{key}: ramp {ramp['id']} of {ramp['variant']} is {ramp['status']} ({plan})")
    typer.echo(f"experiment: {ramp['experiment_status']}; next step: {ramp['next_at'] or '-'}")
    if ramp["last_error"]:
        typer.echo(f"last error: {ramp['last_error']}")


@ramp_app.command("rollback")
def ramp_rollback(
    key: str,
    reason: Annotated[str, typer.Option(help="why (required; kept in the audit log)")],
) -> None:
    """Roll the active ramp back now (rolling_out → rolled_back)."""
    from splitlab.decisions.rollout import rollback_rollout

    ramp = _with_services(
        lambda services: rollback_rollout(services=services, key=key, reason=reason, actor=_actor())
    )
    typer.echo(f"{key}: ramp {ramp['id']} rolled back; experiment {ramp['experiment_status']}")


@scheduler_app.command("status")
def scheduler_status_(as_json: JsonOption = False) -> None:
    """Show who runs the scheduler (its lease) and the webhook outbox by state."""
    from splitlab.decisions.scheduler import scheduler_status

    services = _run(_services)
    try:
        status = scheduler_status(services=services)
    finally:
        services.close()
    if as_json:
        _print_json(status)
        return
    lease = status["lease"]
    typer.echo(f"lease: {lease['owner'] or 'free'} until {lease['expires_at'] or '-'}")
    deliveries = ", ".join(f"{n} {state}" for state, n in status["webhooks"]["deliveries"].items())
    url = "set" if status["webhooks"]["url_set"] else "not set"
    typer.echo(f"webhooks (URL {url}): {deliveries or 'none'}")


@scheduler_app.command("tick")
def scheduler_tick(
    now: Annotated[
        datetime | None, typer.Option(help="the schedule's clock (default: now, UTC)")
    ] = None,
) -> None:
    """Run one scheduler tick (for cron, with SPLITLAB_SCHEDULER_SECONDS=0 on the server):
    due starts and stops, guardrail auto-stop, ramp steps, webhook outbox; then deliver due
    webhooks. Skipped when a server holds the scheduler's lease."""
    from splitlab.decisions.scheduler import Scheduler
    from splitlab.decisions.webhooks import WebhookSender

    services = _run(_services)
    try:
        scheduler = Scheduler(services)
        moment = now if now is None or now.tzinfo else now.replace(tzinfo=UTC)
        report = _run(lambda: scheduler.tick(now=moment)).to_json()
        if report["ran"]:
            scheduler.release()
            sender = WebhookSender(services)
            try:
                report["webhooks"] = [
                    {"event": o.event_id, "delivered": o.delivered, "error": o.error}
                    for o in sender.deliver_due()
                ]
            finally:
                sender.close()
        else:
            owner, until = scheduler.holder()
            report["lease"] = {"owner": owner, "expires_at": until}
    finally:
        services.close()
    _print_json(report)


program_app = typer.Typer(
    help="Program views: impact, hypothesis tracker, cost-benefit, velocity.", no_args_is_help=True
)
app.add_typer(program_app, name="program")
ProgramTeam = Annotated[str, typer.Option(help="only this team")]
ProgramType = Annotated[str, typer.Option("--type", help="only this experiment type")]
ProgramRange = Annotated[str, typer.Option("--range", help="decided within: 90d, 180d, 365d, all")]


def _program(view: str, params: dict[str, str], as_json: bool) -> dict[str, Any] | None:
    """One program view (``decisions.program_views``), printed as JSON with ``--json``."""
    from splitlab.decisions.program import parse_filters
    from splitlab.decisions.program_views import program_view

    data: dict[str, Any] = _with_services(
        lambda services: program_view(
            services=services, view=view, filters=parse_filters(params), now=datetime.now(UTC)
        )
    )
    if as_json:
        _print_json(data)
        return None
    return data


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}%"


@program_app.command("impact")
def program_impact(
    team: ProgramTeam = "",
    type_: ProgramType = "",
    range_: ProgramRange = "all",
    as_json: JsonOption = False,
) -> None:
    """Shipped changes with their lifts; the raw and James–Stein-shrunk totals (95% CI)."""
    data = _program("impact", {"team": team, "type": type_, "range": range_}, as_json)
    if data is None:
        return
    for c in data["changes"]:
        typer.echo(
            f"{(c['decided_at'] or '')[:10]}  {c['key']}: {_pct(c['lift'])} "
            f"[{_pct(c['ci_low'])}, {_pct(c['ci_high'])}] -> shrunk {_pct(c['shrunk_lift'])}"
        )
    raw, shrunk = data["raw_total"], data["shrunk_total"]
    typer.echo(
        f"raw sum {_pct(raw['value'])} [{_pct(raw['ci_low'])}, {_pct(raw['ci_high'])}]; "
        f"James-Stein {_pct(shrunk['value'])} [{_pct(shrunk['ci_low'])}, "
        f"{_pct(shrunk['ci_high'])}] over {len(data['changes'])} shipped of "
        f"{data['population']} decided"
    )


@program_app.command("tracker")
def program_tracker(
    team: ProgramTeam = "",
    type_: ProgramType = "",
    range_: ProgramRange = "all",
    period: Annotated[str, typer.Option(help="calibration per month or quarter")] = "quarter",
    as_json: JsonOption = False,
) -> None:
    """Hypotheses, predictions and verdicts of decided experiments; the Brier score."""
    params = {"team": team, "type": type_, "range": range_, "period": period}
    data = _program("tracker", params, as_json)
    if data is None:
        return
    for r in data["rows"]:
        chance = r["predicted_probability"]
        said = f"{chance * 100:.0f}% to win" if chance is not None else "no forecast"
        typer.echo(f"{r['key']}: {said}; {r['verdict']} {_pct(r['lift'])} -> {r['match']}")
    cal = data["calibration"]
    brier = f"{cal['brier']:.3f}" if cal["brier"] is not None else "-"
    typer.echo(f"Brier score {brier} over {cal['n']} forecasts")


@program_app.command("cost-benefit")
def program_cost_benefit(
    team: ProgramTeam = "",
    type_: ProgramType = "",
    range_: ProgramRange = "all",
    benefit: Annotated[str, typer.Option(help="lift or value (per day)")] = "lift",
    as_json: JsonOption = False,
) -> None:
    """Each decided experiment's cost against its measured benefit, with its quadrant."""
    params = {"team": team, "type": type_, "range": range_, "benefit": benefit}
    data = _program("cost-benefit", params, as_json)
    if data is None:
        return
    for p in data["points"]:
        typer.echo(f"{p['key']}: cost {p['cost']:,.0f}, benefit {p['benefit']} ({p['quadrant']})")
    if data["missing_costs"]:
        typer.echo(f"without costs: {', '.join(data['missing_costs'])}")


@program_app.command("velocity")
def program_velocity(
    team: ProgramTeam = "",
    type_: ProgramType = "",
    range_: Annotated[
        str, typer.Option("--range", help="the period against the one before: 90d, 180d, 365d")
    ] = "90d",
    as_json: JsonOption = False,
) -> None:
    """Per team: launched, completed, median run time and win rate in the period, beside the
    period before it (the fleet view's definitions; the page is /program/velocity)."""
    from splitlab.decisions.program import parse_filters
    from splitlab.web.program import velocity_view

    params = {"team": team, "type": type_, "range": range_}
    data: dict[str, Any] = _with_services(
        lambda services: velocity_view(services, parse_filters(params), now=datetime.now(UTC))
    )
    if as_json:
        _print_json(data)
        return
    typer.echo(f"last {data['period_days']} days against the {data['period_days']} before")
    for t in data["teams"]:
        now_, then = t["current"], t["previous"]
        rate = now_.get("win_rate")
        typer.echo(
            f"{t['team']}: launched {now_['launched']} (was {then['launched']}), completed "
            f"{now_['completed']} (was {then['completed']}), win rate "
            + ("-" if rate is None else f"{rate:.0%}")
        )


# ---------------------------------------------------------------- ML views (issue 17)


def _measure_text(part: str, measure: Any) -> str:
    text = f"{part} {measure.value:.4g}"
    if measure.delta is None:
        return text + " (control)"
    interval = ""
    if not measure.exact and measure.ci_low is not None and measure.ci_high is not None:
        interval = f" [{measure.ci_low:+.4g}, {measure.ci_high:+.4g}]"
    verdict = (
        "listed price"
        if measure.exact
        else ("significant" if measure.significant else "not significant")
    )
    return f"{text} ({measure.delta:+.4g}{interval}, {verdict})"


@app.command("models")
def models_command(
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", help="experiment type (repeatable; 'all': every type)"),
    ] = None,
    search: Annotated[str, typer.Option(help="configurations whose name contains this")] = "",
    as_json: JsonOption = False,
) -> None:
    """The model / prompt leaderboard: each configuration's quality, cost and latency against
    its experiment's control, and whether it is on that experiment's Pareto frontier."""
    from splitlab.decisions.leaderboard import Selection, leaderboard
    from splitlab.decisions.ml import ML_TYPES

    types = tuple(type_ or ())
    selection = Selection(types=() if "all" in types else (types or ML_TYPES), search=search)
    entries = _with_services(lambda services: leaderboard(services=services, selection=selection))
    if as_json:
        _print_json([e.to_json() for e in entries])
        return
    for e in entries:
        parts = [
            _measure_text(part, m)
            for part in ("quality", "cost", "latency")
            if (m := e.measures.get(part)) is not None and m.value is not None
        ]
        mark = "frontier" if e.frontier else f"dominated by {e.dominated_by}"
        typer.echo(f"{e.experiment}/{e.variant} {e.config}: {'; '.join(parts) or '-'} — {mark}")


@app.command("canary")
def canary_command(key: str, as_json: JsonOption = False) -> None:
    """A canary against its control: each watched metric with its always-valid bound, the
    decision engine's advice and how automatic rollback works here."""
    from splitlab.decisions.canary import canary_state

    state = _with_services(lambda services: canary_state(services=services, key=key))
    if as_json:
        _print_json(state)
        return
    rec = state["recommendation"]
    typer.echo(f"{key}: {state['status']}" + (f"; engine: {rec['code']}" if rec else ""))
    for r in state["rows"]:
        low, high = r["always_valid_ci"]
        bound = f"[{low:+.1%}, {high:+.1%}]" if low is not None and high is not None else "-"
        change = f"{r['rel_effect']:+.1%}" if r["rel_effect"] is not None else "-"
        typer.echo(
            f"  {r['label']} ({r['variant']}): {change}, always valid {bound} — {r['verdict']}"
        )
    typer.echo(state["automatic"]["text"])


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
