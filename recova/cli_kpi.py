"""`recova kpi`, `recova snapshot` and `recova demo`."""

import json
from dataclasses import replace
from datetime import date, timedelta
from typing import Annotated, Any

import typer


def _default_period() -> tuple[date, date]:
    """Return the last full calendar month, the page's default period."""
    from services.segments import local_today

    first_of_month = local_today().replace(day=1)
    end = first_of_month - timedelta(days=1)
    return end.replace(day=1), end


def kpi_command(
    date_from: Annotated[
        str | None,
        typer.Option("--from", help="First day YYYY-MM-DD; default: last month's"),
    ] = None,
    date_to: Annotated[
        str | None,
        typer.Option("--to", help="Last day YYYY-MM-DD; default: last month's"),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            help="Also print the figures per creditor, batch, product, province, "
            "bucket, segment, grade, team or collector"
        ),
    ] = None,
    creditor: Annotated[
        str | None, typer.Option(help="Only this creditor's cases (name)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object")
    ] = False,
) -> None:
    """Print the KPI figures of a period and the change against the period before.

    In JSON, rates are fractions (0.1743 is 17.43%), money is text with 2 decimals.
    """
    from recova.cli import _fail, _language, _parse_day, _session, _usage
    from recova.errors import RecovaError
    from services.actors import Actor
    from services.kpi import breakdown, kpis
    from services.payments import creditor_by_name

    default_from, default_to = _default_period()
    start = _parse_day(date_from, "--from") or default_from
    end = _parse_day(date_to, "--to") or default_to
    if start > end:
        _usage(f"--from {start} is after --to {end}")
    actor = replace(Actor.operator(), language=_language())
    try:
        with _session() as session:
            filters = _filters(session, start, end, creditor, creditor_by_name)
            result = kpis(session=session, actor=actor, filters=filters)
            data = result.as_json()
            if by:
                frame = breakdown(session=session, actor=actor, filters=filters, by=by)
                data["breakdown"] = {"by": by, "rows": _rows_json(frame)}
    except RecovaError as error:
        _fail(error, 1, as_json)
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    _print_figures(data, _language())


def _filters(session, start, end, creditor, creditor_by_name):
    from services.kpi import KpiFilter

    creditor_id = creditor_by_name(session, creditor).id if creditor else None
    return KpiFilter(date_from=start, date_to=end, creditor_id=creditor_id)


def _rows_json(frame) -> list[dict[str, Any]]:
    from services.kpi import FIGURES

    kinds = {figure_id: kind for figure_id, kind, _, _ in FIGURES}
    rows = []
    for row in frame.iter_rows(named=True):
        item = {}
        for name, value in row.items():
            if name in kinds and value is not None:
                value = f"{value:.2f}" if kinds[name] == "money" else float(value)
            item[name] = value
        rows.append(item)
    return rows


def _print_figures(data: dict[str, Any], language: str) -> None:
    from recova.i18n import translate
    from services.kpi import FIGURES

    period = data["period"]
    typer.echo(f"{period['from']} – {period['to']}")
    for figure_id, kind, _, _ in FIGURES:
        figure = data["figures"][figure_id]
        label = translate(f"kpi.figure.{figure_id}", language)
        typer.echo(
            f"  {label}: {_shown(figure['value'], kind)} "
            f"(previous {_shown(figure['previous'], kind)})"
        )
    if "breakdown" in data:
        typer.echo(f"by {data['breakdown']['by']}:")
        for row in data["breakdown"]["rows"]:
            typer.echo(
                f"  {row['label']}: recovered {row['recovered']}, recovery rate "
                f"{_shown(row['recovery_rate'], 'rate')}"
            )


def _shown(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value * 100:.2f}%"
    if kind == "money":
        return str(value)
    return f"{value:.2f}"


def snapshot_command(
    day: Annotated[
        str | None,
        typer.Option("--date", help="Day YYYY-MM-DD to record; default today"),
    ] = None,
    catch_up: Annotated[
        bool,
        typer.Option(
            "--catch-up/--no-catch-up",
            help="Also take every missed day since the last snapshot",
        ),
    ] = True,
) -> None:
    """Record each case's bucket, balance, status and collector for a day, and
    refresh the KPI sums. Re-running the latest day replaces it."""
    from recova.cli import _fail, _language, _parse_day, _session
    from recova.errors import RecovaError
    from recova.i18n import translate
    from services import snapshots
    from services.segments import local_today

    target = _parse_day(day, "--date") or local_today()
    try:
        with _session() as session:
            days_taken = []
            if catch_up and day is None:
                days_taken = snapshots.catch_up_snapshots(session, target)
            if target not in days_taken:
                snapshots.daily_job(session, target)
                days_taken.append(target)
    except RecovaError as error:
        _fail(error)
    days = ", ".join(day.isoformat() for day in days_taken)
    typer.echo(translate("snapshot.taken", _language(), days=days))


def demo_command(
    cases: Annotated[int, typer.Option(help="Number of cases to place")] = 2000,
    months: Annotated[int, typer.Option(help="Months of history to make up")] = 6,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data")] = 7,
) -> None:
    """Build a made-up collection company through the services, for trying Recova.

    Needs an empty database (no cases yet). Prints the demo users' password.
    """
    from recova.cli import _fail, _session
    from recova.errors import RecovaError
    from services.demo import DemoRequest, build_demo

    try:
        with _session() as session:
            summary = build_demo(
                session=session,
                request=DemoRequest(cases=cases, months=months, seed=seed),
                progress=lambda message: typer.echo(message),
            )
    except RecovaError as error:
        _fail(error)
    typer.echo(summary.describe())


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("kpi")(kpi_command)
    app.command("snapshot")(snapshot_command)
    app.command("demo")(demo_command)
