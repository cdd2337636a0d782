"""`recova score`, `score train` and `score promote`, run as subprocesses against the
test database."""

import json

from sqlalchemy import select

from db.models import Case
from tests.cli.test_cli import recova
from tests.factories import make_user
from tests.scoring_history import make_history

OUTCOMES = "age,amount,product,paid\n" + "".join(
    f"{20 + n % 40},{1000 + 37 * n},{'car' if n % 2 else 'card'},"
    f"{'yes' if (n % 40) > 15 else 'no'}\n"
    for n in range(300)
)


def test_score_json(session, database_url):
    make_history(session, cases=30, days=60)
    result = recova(database_url, "score", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "scorecard v0"
    assert data["scored"] == 30
    assert sum(data["grades"].values()) == 30
    session.expire_all()
    grades = session.scalars(select(Case.risk_grade)).all()
    assert None not in grades


def test_score_bad_date(database_url, engine):
    result = recova(database_url, "score", "--date", "2026-13-01")
    assert result.returncode == 2
    assert "--date" in result.stderr


def test_train_file_json(engine, database_url, tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text(OUTCOMES, encoding="utf-8")
    result = recova(
        database_url, "score", "train", "--file", str(path), "--label", "paid", "--json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["train_rows"] == 210
    assert data["evaluation_rows"] == 90
    assert data["metrics"]["logistic"]["auc"] > 0.9
    assert data["plain_logistic_auc"] is not None
    assert data["columns"] == {
        "age": "age",
        "amount": "total_due",
        "product": "product",
    }


def test_train_file_needs_label(engine, database_url, tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text(OUTCOMES, encoding="utf-8")
    result = recova(database_url, "score", "train", "--file", str(path))
    assert result.returncode == 2
    assert "--label" in result.stderr


def test_promote_as_collector_denied(session, database_url, tmp_path):
    make_user(session, "cal", role="collector")
    session.commit()
    path = tmp_path / "outcomes.csv"
    path.write_text(OUTCOMES, encoding="utf-8")
    trained = recova(
        database_url, "score", "train", "--file", str(path), "--label", "paid", "--json"
    )
    model_id = json.loads(trained.stdout)["model_ids"][0]
    result = recova(
        database_url, "score", "promote", str(model_id), "--as", "cal", "--json"
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "role_required"
