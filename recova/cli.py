"""The `recova` command line: an operator's tool over the same services as the app.

Exit codes: 0 when the command ran (an import with rejected rows included), 1 when
the input was refused as a whole, 2 for usage errors.
"""

import json
import logging
import os
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
    # The child joins the embedded server this process started; this process keeps
    # its handle until the app exits, so the server stops only after both are done.
    try:
        raise typer.Exit(subprocess.call(command))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


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


def main() -> None:
    logging.basicConfig(level=os.environ.get("RECOVA_LOG_LEVEL", "WARNING"))
    app()


if __name__ == "__main__":
    main()
