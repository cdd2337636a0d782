"""The `recova` command line: an operator's tool over the same services as the app.

Exit codes: 0 when the command ran (an import with rejected rows included), 1 when
the input was refused as a whole, 2 for usage errors.
"""

import json
import logging
import os
import signal
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from recova.errors import RecovaError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Recova operator tool"
)
db_app = typer.Typer(no_args_is_help=True, help="Database set-up and migrations")
user_app = typer.Typer(no_args_is_help=True, help="Users and roles")
import_app = typer.Typer(no_args_is_help=True, help="Import creditor files")
case_app = typer.Typer(no_args_is_help=True, help="Look up cases")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(import_app, name="import")
app.add_typer(case_app, name="case")


def _language() -> str:
    chosen = os.environ.get("RECOVA_LANGUAGE") or os.environ.get("LANG", "")
    return "zh-CN" if chosen.lower().startswith("zh") else "en"


def _fail(error: RecovaError, code: int = 1, as_json: bool = False) -> None:
    message = error.message(_language())
    if as_json:
        print(json.dumps({"error": error.code, "message": message}, ensure_ascii=False))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _usage(message: str) -> None:
    typer.echo(f"usage error: {message}", err=True)
    raise typer.Exit(2)


def _session():
    from db.engine import session_factory

    return session_factory()()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database if needed and apply every migration."""
    from db import migrate

    migrate.upgrade()
    typer.echo(f"database at revision {migrate.current_revision()}")


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Login name")],
    role: Annotated[
        str,
        typer.Option(help="admin, manager, team_lead, collector, finance or auditor"),
    ],
    team: Annotated[str | None, typer.Option(help="Team name; created if new")] = None,
    regions: Annotated[
        str | None,
        typer.Option(help="Provinces served, comma separated; empty means all"),
    ] = None,
    skill: Annotated[int, typer.Option(help="Collector skill level, 1 to 3")] = 1,
    capacity: Annotated[int, typer.Option(help="Maximum open cases")] = 500,
    language: Annotated[str, typer.Option(help="zh-CN or en")] = "zh-CN",
    display_name: Annotated[str, typer.Option(help="Name shown in the app")] = "",
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input"),
    ] = False,
) -> None:
    """Add a user. The first admin of a new install is made this way or in the app."""
    from services.actors import Actor
    from services.users import NewUser, add_user, validated

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        data = validated(
            NewUser,
            username=name,
            password=password,
            role=role,
            team=team,
            regions=[r for r in (regions or "").split(",") if r.strip()],
            skill=skill,
            capacity=capacity,
            language=language,
            display_name=display_name,
        )
        with _session() as session:
            from services.auth import needs_first_admin

            actor = None if needs_first_admin(session=session) else Actor.operator()
            user = add_user(session=session, actor=actor, data=data)
    except RecovaError as error:
        _fail(error)
    typer.echo(f"added user {user.username} ({user.role})")


def _catch_up_snapshots_in_background() -> None:
    """Take the snapshots and KPI sums of the days the app and the worker were down.

    After a long outage at millions of cases this takes minutes, so it runs beside
    the web server instead of delaying it. A failure is logged, and the worker's
    daily run takes the missed days again.
    """
    import threading

    def run() -> None:
        from db.engine import session_factory
        from services.segments import local_today
        from services.snapshots import catch_up_snapshots

        try:
            with session_factory()() as session:
                days = catch_up_snapshots(session, local_today())
            if days:
                typer.echo(f"KPI snapshots taken for {len(days)} day(s)")
        except Exception:
            logging.getLogger(__name__).exception("snapshot catch-up failed")

    threading.Thread(target=run, name="snapshot-catch-up", daemon=True).start()


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="Port for the web app")] = 8501,
    address: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
) -> None:
    """Migrate the database and serve the web app until interrupted."""
    import subprocess

    from db import migrate
    from db.engine import session_factory
    from services.auth import needs_first_admin

    migrate.upgrade()
    with session_factory()() as session:
        first_run = needs_first_admin(session=session)
    _catch_up_snapshots_in_background()
    host = "localhost" if address in ("127.0.0.1", "0.0.0.0") else address
    url = f"http://{host}:{port}"
    typer.echo(f"Recova is at {url}")
    if first_run:
        typer.echo(
            "No admin yet: open the URL and create the first admin in the setup "
            "form, or run `.venv/bin/recova user add NAME --role admin`."
        )
    else:
        typer.echo("Log in with your user name and password.")
    app_file = Path(__file__).resolve().parents[1] / "app.py"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_file),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    # The child joins the embedded server that this process started. This process
    # keeps its handle until the app exits, so the server stops after both are done.
    child = subprocess.Popen(command)

    def stop(signum: int, frame: object) -> None:
        # SIGTERM would end this process without its exit handlers, leaving the
        # embedded server running; stop the app, then exit normally.
        child.terminate()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        child.terminate()
        code = child.wait()
    raise typer.Exit(code)


def _parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _usage(f"{option} must be a date as YYYY-MM-DD, got {value!r}")
    return None


@import_app.command("cases")
def import_cases_command(
    file: Annotated[Path, typer.Argument(help="CSV or Excel placement file")],
    creditor: Annotated[str, typer.Option(help="Creditor name; created if new")],
    batch: Annotated[str | None, typer.Option(help="Batch name")] = None,
    placement_date: Annotated[
        str | None,
        typer.Option(help="Placement date YYYY-MM-DD, for rows without their own"),
    ] = None,
    recall_date: Annotated[
        str | None, typer.Option(help="Recall date YYYY-MM-DD")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="valid-rows (import good rows, report the rest) or all-or-nothing"
        ),
    ] = "valid-rows",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object")
    ] = False,
) -> None:
    """Import a placement file as one batch and report every row not imported."""
    from services.actors import Actor
    from services.intake import ImportRequest, import_cases

    if mode not in ("valid-rows", "all-or-nothing"):
        _usage(f"--mode must be valid-rows or all-or-nothing, got {mode!r}")
    if not file.is_file():
        _usage(f"file not found: {file}")
    request = ImportRequest(
        creditor=creditor,
        batch_name=batch,
        placement_date=_parse_day(placement_date, "--placement-date"),
        recall_date=_parse_day(recall_date, "--recall-date"),
        mode=mode,
    )
    actor = replace(Actor.operator(), language=_language())
    try:
        with _session() as session:
            report = import_cases(
                session=session,
                actor=actor,
                request=request,
                content=file.read_bytes(),
                filename=file.name,
            )
    except RecovaError as error:
        _fail(error, 1, as_json)
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        _print_report(report.as_json())
    raise typer.Exit(1 if report.refused else 0)


def _print_report(data: dict[str, Any]) -> None:
    typer.echo(
        f"batch {data['batch_id']} ({data['batch_name']}): "
        f"{data['imported']} imported, "
        f"{len(data['rejected'])} rejected, {len(data['warnings'])} warnings, "
        f"{len(data['skipped_existing'])} already existed"
    )
    for kind in ("file_issues", "rejected", "warnings"):
        for issue in data[kind]:
            typer.echo(f"  {kind[:-1]} row {issue['row']}: {issue['message']}")
    if data["refused"]:
        typer.echo("nothing imported: all-or-nothing mode and some rows were rejected")


@import_app.command("payments")
def import_payments_command(
    file: Annotated[Path, typer.Argument(help="CSV or Excel payment file")],
    creditor: Annotated[str, typer.Option(help="Name of an existing creditor")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object")
    ] = False,
) -> None:
    """Post a creditor's payment file; unmatched payments go to the finance queue."""
    from services.payments import (
        PaymentImportRequest,
        finance_operator,
        import_payments,
    )

    if not file.is_file():
        _usage(f"file not found: {file}")
    actor = replace(finance_operator(), language=_language())
    try:
        with _session() as session:
            report = import_payments(
                session=session,
                actor=actor,
                request=PaymentImportRequest(creditor=creditor),
                content=file.read_bytes(),
                filename=file.name,
            )
    except RecovaError as error:
        _fail(error, 1, as_json)
    data = report.as_json()
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    _print_payment_report(data)


def _print_payment_report(data: dict[str, Any]) -> None:
    typer.echo(
        f"payment import {data['import_id']}: {data['posted']} posted "
        f"({data['recovered_total']} net), {len(data['unmatched'])} unmatched, "
        f"{len(data['duplicates_skipped'])} repeats skipped, "
        f"{len(data['rejected'])} rejected"
    )
    for issue in data["file_issues"] + data["rejected"]:
        typer.echo(f"  rejected row {issue['row']}: {issue['message']}")
    for repeat in data["duplicates_skipped"]:
        typer.echo(f"  skipped row {repeat['row']}: {repeat['transaction']} repeated")
    for transaction in data["unmatched"]:
        typer.echo(f"  unmatched: {transaction}")
    for case_no in data["paid_in_full"]:
        typer.echo(f"  paid in full: {case_no}")
    for case_no, amount in data["overpaid"].items():
        typer.echo(f"  overpaid: {case_no} by {amount}")


@case_app.command("show")
def case_show(
    case_no: Annotated[str, typer.Argument(help="Case number")],
    creditor: Annotated[str, typer.Option(help="Creditor name")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object")
    ] = False,
) -> None:
    """Print one case unmasked, with its debtor, contacts and extra columns."""
    from services.actors import Actor
    from services.cases import find_case

    try:
        with _session() as session:
            view = find_case(
                session=session,
                actor=Actor.operator(),
                creditor=creditor,
                case_no=case_no,
            )
    except RecovaError as error:
        _fail(error, 1, as_json)
    data = view.as_json()
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    for key, value in data.items():
        typer.echo(f"{key}: {value}")


@app.command("assign")
def assign_command(
    auto: Annotated[
        bool, typer.Option("--auto", help="Assign every new case by the automatic rule")
    ] = False,
    creditor: Annotated[
        str | None, typer.Option(help="Assign only this creditor's new cases")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the result without saving it")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object")
    ] = False,
) -> None:
    """Assign new cases to collectors and print who got which case.

    Prints `assigned` (case number to user name), `unassigned` (case number to
    reason) and each collector's open cases and balance. A case number that two
    creditors share in one run is printed as CASE_NO@CREDITOR.
    """
    from services.actors import Actor
    from services.assignment import auto_assign

    if not auto:
        _usage("recova assign needs --auto (the automatic rule is the only mode)")
    actor = replace(Actor.operator(), language=_language())
    try:
        with _session() as session:
            result = auto_assign(
                session=session, actor=actor, creditor=creditor, dry_run=dry_run
            )
    except RecovaError as error:
        _fail(error, 1, as_json)
    data = result.as_json()
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        _print_assignment(data)


def _print_assignment(data: dict[str, Any]) -> None:
    from recova.i18n import translate

    if data["dry_run"]:
        typer.echo("dry run: nothing was saved")
    typer.echo(
        f"{len(data['assigned'])} assigned, {len(data['unassigned'])} unassigned"
    )
    typer.echo("assigned:")
    for case_no, username in data["assigned"].items():
        typer.echo(f"  {case_no} -> {username}")
    typer.echo("unassigned:")
    for case_no, reason in data["unassigned"].items():
        typer.echo(f"  {case_no}: {translate(f'reason.{reason}', _language())}")
    typer.echo("collectors:")
    for username, load in data["collectors"].items():
        typer.echo(
            f"  {username}: {load['open_cases']} open cases, balance "
            f"{load['balance']} (+{load['new_cases']} cases, +{load['new_balance']})"
        )


# Commands of later features live in their own modules and share the helpers above.
from recova import cli_followup, cli_kpi, cli_score  # noqa: E402

for _module in (cli_followup, cli_kpi, cli_score):
    _module.register(app)


def main() -> None:
    from sqlalchemy.exc import OperationalError

    logging.basicConfig(level=os.environ.get("RECOVA_LOG_LEVEL", "WARNING"))
    try:
        app()
    except OperationalError as error:
        # A wrong DATABASE_URL, a server that is down or a missing database gets
        # one line naming the cause instead of a page of traceback.
        reason = str(error.orig or error).strip().splitlines()[0]
        typer.echo(
            f"error: cannot reach the database ({reason}). Check DATABASE_URL, or "
            "unset it to use the embedded server.",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
