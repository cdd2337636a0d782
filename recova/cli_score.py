"""`recova score` commands: score open cases, train models and promote one."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from recova.errors import NotFound, RecovaError

score_app = typer.Typer(
    invoke_without_command=True,
    help="Risk grades: score open cases, train and promote models",
)


def _actor(session: Any, username: str | None) -> Any:
    """Return the operator (admin rights), or the named user's actor for --as."""
    from sqlalchemy import select

    from db.models import User
    from recova.cli import _language
    from services.actors import Actor

    if username is None:
        return replace(Actor.operator(), language=_language())
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        raise NotFound("username_not_found", username=username)
    return Actor.from_user(user)


def _print(data: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        return
    for line in lines:
        typer.echo(line)


@score_app.callback()
def score_command(
    ctx: typer.Context,
    day: Annotated[
        str | None,
        typer.Option("--date", help="Score as of this date, YYYY-MM-DD; default today"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object")
    ] = False,
) -> None:
    """Score every open case with the champion model (or the scorecard) and print
    the model, its evaluation figures and the count of cases per grade."""
    if ctx.invoked_subcommand is not None:
        return
    from recova.cli import _fail, _parse_day, _session
    from services.scoring import score_open_cases
    from services.segments import local_today

    scoring_day = _parse_day(day, "--date") or local_today()
    try:
        with _session() as session:
            counts = score_open_cases(
                session=session, day=scoring_day, actor=_actor(session, None)
            )
    except RecovaError as error:
        _fail(error, 1, as_json)
    data = counts.as_json()
    grades = ", ".join(f"{grade} {count}" for grade, count in counts.grades.items())
    _print(
        data,
        as_json,
        [
            f"scored {counts.scored} open cases as of {scoring_day} with "
            f"{counts.scorer_name}; {counts.changed} changed",
            f"grades: {grades}",
            *(f"{name}: {value}" for name, value in counts.metrics.items()),
        ],
    )


@score_app.command("train")
def train_command(
    file: Annotated[
        Path | None,
        typer.Option(help="CSV or Excel file of past outcomes; default: Recova's own"),
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Header of the file's outcome column")
    ] = None,
    positive: Annotated[
        str | None,
        typer.Option(help="Outcome value meaning the debtor paid, such as good or 1"),
    ] = None,
    train_from: Annotated[
        str | None, typer.Option(help="First training snapshot, YYYY-MM-DD")
    ] = None,
    train_to: Annotated[
        str | None, typer.Option(help="Last training snapshot, YYYY-MM-DD")
    ] = None,
    evaluate_on: Annotated[
        str | None,
        typer.Option(help="Evaluation snapshot, at least 30 days after --train-to"),
    ] = None,
    step_days: Annotated[int, typer.Option(help="Days between snapshots")] = 7,
    seed: Annotated[int, typer.Option(help="Random seed of the split and models")] = 7,
    username: Annotated[
        str | None, typer.Option("--as", help="Act as this user (checks the role)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object")
    ] = False,
) -> None:
    """Train a logistic and a gradient-boosting model, store both as challengers and
    print their evaluation figures."""
    from pydantic import ValidationError

    from recova.cli import _fail, _parse_day, _session, _usage
    from services import scoring

    if file is not None and not file.is_file():
        _usage(f"file not found: {file}")
    if file is not None and not label:
        _usage("--file needs --label, the header of the outcome column")
    try:
        with _session() as session:
            actor = _actor(session, username)
            if file is not None:
                result = scoring.train_from_file(
                    session=session,
                    actor=actor,
                    content=file.read_bytes(),
                    filename=file.name,
                    data=scoring.FileTrainInput(
                        label=label, positive=positive, seed=seed
                    ),
                )
            else:
                defaults = scoring.history_defaults()
                data = scoring.HistoryTrainInput(
                    train_from=_parse_day(train_from, "--train-from")
                    or defaults.train_from,
                    train_to=_parse_day(train_to, "--train-to") or defaults.train_to,
                    evaluate_on=_parse_day(evaluate_on, "--evaluate-on")
                    or defaults.evaluate_on,
                    step_days=step_days,
                    seed=seed,
                )
                result = scoring.train_from_history(
                    session=session, actor=actor, data=data
                )
    except ValidationError as error:
        _usage(error.errors()[0]["msg"])
    except RecovaError as error:
        _fail(error, 1, as_json)
    lines = [
        f"trained on {result.train_rows} rows, evaluated on "
        f"{result.evaluation_rows} rows",
        *(
            f"model {model_id} ({kind}): AUC {figures['auc']}, KS {figures['ks']}"
            for model_id, (kind, figures) in zip(
                result.model_ids, result.metrics.items(), strict=True
            )
        ),
    ]
    if result.plain_logistic_auc is not None:
        lines.append(
            f"plain logistic regression on all raw columns: AUC "
            f"{result.plain_logistic_auc}"
        )
    lines.append(
        f"proposed for promotion: model {result.proposed_id}"
        if result.proposed_id
        else "no model reached the AUC needed for promotion"
    )
    _print(result.as_json(), as_json, lines)


@score_app.command("promote")
def promote_command(
    model_id: Annotated[int, typer.Argument(help="Model id from `score train`")],
    username: Annotated[
        str, typer.Option("--as", help="Manager or admin who promotes the model")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object")
    ] = False,
) -> None:
    """Make a model the champion that scores cases from the next run on."""
    from recova.cli import _fail, _session
    from services.scoring import promote_model

    try:
        with _session() as session:
            view = promote_model(
                session=session, actor=_actor(session, username), model_id=model_id
            )
    except RecovaError as error:
        _fail(error, 1, as_json)
    _print(
        view.as_json(),
        as_json,
        [
            f"model {view.id} ({view.name}) is the champion: "
            f"AUC {view.auc}, KS {view.ks}"
        ],
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(score_app, name="score")
