"""`recova` commands of the follow-up feature: contact log, promises, reminders, the
job worker and the daily jobs.

`--as USER` runs a command as that user, with their role and cases, so a script
records work under the collector who did it and the same checks apply as in the app.
"""

import dataclasses
import json
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from recova.errors import RecovaError

contact_app = typer.Typer(no_args_is_help=True, help="Contact log")
promise_app = typer.Typer(no_args_is_help=True, help="Promises to pay")
jobs_app = typer.Typer(no_args_is_help=True, help="Scheduled jobs")

AsUser = Annotated[str, typer.Option("--as", help="User name to act as")]
Creditor = Annotated[str, typer.Option(help="Creditor name")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object")]


def _actor(session, username: str):
    from sqlalchemy import select

    from db.models import User
    from recova.errors import NotFound
    from services.actors import Actor

    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.is_active:
        raise NotFound("username_not_found", username=username)
    return Actor.from_user(user)


def _case_id(session, actor, creditor: str, case_no: str) -> int:
    from services.cases import find_case

    return find_case(
        session=session, actor=actor, creditor=creditor, case_no=case_no
    ).id


def _moment(value: str | None, option: str) -> datetime | None:
    from recova.cli import _usage

    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        _usage(f"{option} must be a time as YYYY-MM-DDTHH:MM[+08:00], got {value!r}")
    return None


def _invalid(error: ValidationError) -> None:
    from recova.cli import _usage

    problems = "; ".join(
        f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
        for item in error.errors()
    )
    _usage(problems)


def _refused(error, as_json: bool) -> None:
    """Print a compliance refusal with its rule and when contact is allowed again."""
    from recova.cli import _language

    message = error.message(_language())
    allowed = error.allowed_from.isoformat() if error.allowed_from else None
    if as_json:
        print(
            json.dumps(
                {
                    "error": error.code,
                    "rule": error.rule,
                    "allowed_from": allowed,
                    "message": message,
                },
                ensure_ascii=False,
            )
        )
    else:
        typer.echo(f"refused ({error.rule}): {message}", err=True)
    raise typer.Exit(1)


def contact_add(
    case_no: Annotated[str, typer.Argument(help="Case number")],
    creditor: Creditor,
    channel: Annotated[
        str, typer.Option(help="phone, sms, wechat, email, letter or visit")
    ],
    result: Annotated[str, typer.Option(help="Result code, such as no_answer")],
    as_user: AsUser,
    note: Annotated[str | None, typer.Option(help="Note")] = None,
    at: Annotated[
        str | None, typer.Option(help="When it happened, ISO time; default now")
    ] = None,
    target: Annotated[str, typer.Option(help="debtor, contact or third_party")] = (
        "debtor"
    ),
    address: Annotated[
        str | None, typer.Option(help="Number or address reached")
    ] = None,
    recording: Annotated[str | None, typer.Option(help="Recording reference")] = None,
    next_at: Annotated[
        str | None, typer.Option("--next", help="Next follow-up, ISO time")
    ] = None,
    opt_out: Annotated[
        bool, typer.Option("--opt-out", help="The message carried an opt-out")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Record a contact attempt through the compliance guard."""
    from recova.cli import _fail, _language, _session
    from recova.i18n import translate
    from services.compliance import ComplianceRefused
    from services.contacts import AttemptInput, record_attempt

    when, follow_up = _moment(at, "--at"), _moment(next_at, "--next")
    try:
        with _session() as session:
            actor = _actor(session, as_user)
            data = AttemptInput(
                case_id=_case_id(session, actor, creditor, case_no),
                channel=channel,
                target=target,
                target_address=address,
                result_code=result,
                note=note,
                at=when,
                next_follow_up_at=follow_up,
                recording_ref=recording,
                opt_out_included=opt_out,
            )
            outcome = record_attempt(session=session, actor=actor, data=data)
    except ValidationError as error:
        _invalid(error)
    except ComplianceRefused as error:
        _refused(error, as_json)
    except RecovaError as error:
        _fail(error, 1, as_json)
    warnings = [translate(key, _language()) for key in outcome.warnings]
    payload = {
        "attempt_id": outcome.attempt_id,
        "case_no": case_no,
        "case_version": outcome.case_version,
        "next_action_at": outcome.next_action_at.isoformat()
        if outcome.next_action_at
        else None,
        "warnings": outcome.warnings,
        "warning_messages": warnings,
    }
    if as_json:
        print(json.dumps(payload, ensure_ascii=False))
        return
    typer.echo(f"attempt {outcome.attempt_id} recorded on {case_no}")
    typer.echo(f"next action: {payload['next_action_at']}")
    for line in warnings:
        typer.echo(f"warning: {line}")


def promise_add(
    case_no: Annotated[str, typer.Argument(help="Case number")],
    creditor: Creditor,
    amount: Annotated[str, typer.Option(help="Amount promised, such as 1200.00")],
    due: Annotated[str, typer.Option(help="Due date, YYYY-MM-DD")],
    as_user: AsUser,
    as_json: AsJson = False,
) -> None:
    """Record a promise to pay."""
    from recova.cli import _fail, _parse_day, _session, _usage
    from services.promises import PromiseInput, create_promise

    due_on = _parse_day(due, "--due")
    try:
        money = Decimal(amount)
    except InvalidOperation:
        _usage(f"--amount must be a number such as 1200.00, got {amount!r}")
    try:
        with _session() as session:
            actor = _actor(session, as_user)
            data = PromiseInput(
                case_id=_case_id(session, actor, creditor, case_no),
                amount=money,
                due_on=due_on,
            )
            promise = create_promise(session=session, actor=actor, data=data)
    except ValidationError as error:
        _invalid(error)
    except RecovaError as error:
        _fail(error, 1, as_json)
    payload = {
        "promise_id": promise.id,
        "case_no": case_no,
        "amount": f"{promise.amount:.2f}",
        "due_on": promise.due_on.isoformat(),
        "status": promise.status,
    }
    if as_json:
        print(json.dumps(payload, ensure_ascii=False))
    else:
        typer.echo(
            f"promise {promise.id} on {case_no}: {payload['amount']} due {due_on}"
        )


def _reminder_rows(session, day: date, username: str | None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from db.models import User
    from services.actors import Actor
    from services.reminders import reminders_for

    if username is not None:
        users = [_actor(session, username)]
    else:
        users = [
            Actor.from_user(user)
            for user in session.scalars(
                select(User)
                .where(User.is_active, User.role == "collector")
                .order_by(User.username)
            )
        ]
    operator = Actor.operator()
    rows = []
    for user in users:
        for item in reminders_for(
            session=session, actor=operator, today=day, user_id=user.id
        ):
            rows.append({"user": user.username, **item.as_json()})
    return rows


def remind(
    user: Annotated[
        str | None, typer.Option(help="Only this collector or team lead")
    ] = None,
    day: Annotated[
        str | None, typer.Option("--date", help="Day, YYYY-MM-DD; default today")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List reminders: broken promises, first contacts due, promises due today and
    idle cases, per collector (or for one user)."""
    from recova.cli import _fail, _parse_day, _session
    from services.segments import local_today

    chosen = _parse_day(day, "--date") or local_today()
    try:
        with _session() as session:
            rows = _reminder_rows(session, chosen, user)
    except RecovaError as error:
        _fail(error, 1, as_json)
    if as_json:
        print(
            json.dumps(
                {"date": chosen.isoformat(), "reminders": rows}, ensure_ascii=False
            )
        )
        return
    for row in rows:
        typer.echo(
            f"{row['user']}\t{row['kind']}\t{row['case_no']}\t"
            f"{row['debtor_name_masked']}\t{row['due_at'] or ''}\t{row['detail']}"
        )
    typer.echo(f"{len(rows)} reminders for {chosen}")


def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at once")] = 1,
) -> None:
    """Run the job worker until interrupted: daily jobs at 06:00, promise checks
    every hour, and jobs deferred by the app."""
    from recova.worker import run_worker

    typer.echo(
        f"Recova worker started ({concurrency} at once); daily jobs run at 06:00 "
        "and promise checks every hour. Press Ctrl+C to stop."
    )
    run_worker(concurrency=concurrency)


def _plain(value: Any) -> Any:
    """Turn a job's result (a dataclass, a date, a Decimal) into JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def run_daily_command(
    day: Annotated[
        str | None, typer.Option("--date", help="Day, YYYY-MM-DD; default today")
    ] = None,
) -> None:
    """Run the daily jobs once, now: promise evaluation, resumption of paused
    cases, reminder digests. Running them twice for a day changes nothing."""
    from recova.cli import _parse_day
    from recova.worker import local_day, run_daily

    chosen = _parse_day(day, "--date") or local_day()
    results = run_daily(chosen)
    print(json.dumps({"date": chosen.isoformat(), **results}, default=_plain))


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    contact_app.command("add")(contact_add)
    promise_app.command("add")(promise_add)
    jobs_app.command("run-daily")(run_daily_command)
    app.add_typer(contact_app, name="contact")
    app.add_typer(promise_app, name="promise")
    app.add_typer(jobs_app, name="jobs")
    app.command("remind")(remind)
    app.command("worker")(worker)
