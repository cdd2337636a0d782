"""The `recova` command line, run as a subprocess against the test database."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES

EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


def recova(database_url, *args, stdin=None):
    env = {**os.environ, "DATABASE_URL": database_url, "RECOVA_LANGUAGE": "en"}
    return subprocess.run(
        [sys.executable, "-m", "recova.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_import_json_report(engine, database_url):
    result = recova(
        database_url,
        "import",
        "cases",
        str(FIXTURES / "cases_zh_gbk.csv"),
        "--creditor",
        "CLI Bank",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = EXPECTED["cases_zh_gbk.csv"]
    assert report["imported"] == expected["imported"]
    assert isinstance(report["batch_id"], int)
    assert [issue["row"] for issue in report["rejected"]] == expected["rejected_rows"]
    for issue in report["rejected"] + report["warnings"]:
        assert set(issue) >= {"row", "column", "value", "code", "message"}
    assert report["skipped_existing"] == []


def test_second_import_lists_skipped(engine, database_url):
    path = str(FIXTURES / "cases_en.csv")
    recova(database_url, "import", "cases", path, "--creditor", "CLI Bank", "--json")
    result = recova(
        database_url, "import", "cases", path, "--creditor", "CLI Bank", "--json"
    )
    report = json.loads(result.stdout)
    assert report["imported"] == 0
    assert len(report["skipped_existing"]) == EXPECTED["cases_en.csv"]["imported"]
    assert "US-700100" in report["skipped_existing"]


def test_refused_file_exits_one(engine, database_url, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = recova(
        database_url, "import", "cases", str(empty), "--creditor", "X", "--json"
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "file.file_empty"


def test_all_or_nothing_exits_one(engine, database_url):
    result = recova(
        database_url,
        "import",
        "cases",
        str(FIXTURES / "cases_en.csv"),
        "--creditor",
        "X",
        "--mode",
        "all-or-nothing",
        "--json",
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["imported"] == 0


@pytest.mark.parametrize(
    "args",
    [
        ["import", "cases", "missing.csv", "--creditor", "X"],
        [
            "import",
            "cases",
            "tests/fixtures/cases_en.csv",
            "--creditor",
            "X",
            "--mode",
            "sometimes",
        ],
        [
            "import",
            "cases",
            "tests/fixtures/cases_en.csv",
            "--creditor",
            "X",
            "--placement-date",
            "5 March",
        ],
        ["import", "cases", "tests/fixtures/cases_en.csv"],
    ],
)
def test_usage_errors_exit_two(engine, database_url, args):
    assert recova(database_url, *args).returncode == 2


def test_case_show_unmasked(engine, database_url):
    recova(
        database_url,
        "import",
        "cases",
        str(FIXTURES / "cases_zh_gbk.csv"),
        "--creditor",
        "CLI Bank",
    )
    result = recova(
        database_url,
        "case",
        "show",
        "GBK2411000004",
        "--creditor",
        "CLI Bank",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    case = json.loads(result.stdout)
    assert case["id_number"] == "31011519670731002X"
    assert case["total_due"] == "952.38"
    assert case["balance"] == "952.38"
    assert case["dpd_at_placement"] == 75
    assert case["status"] == "new"
    assert case["extra"]["客户经理"] == "田玲"
    assert case["phone"] == "15514247361"
    assert case["overdue_since"]


def test_case_show_unknown_exits_one(engine, database_url):
    result = recova(database_url, "case", "show", "NOPE", "--creditor", "CLI Bank")
    assert result.returncode == 1
    assert "NOPE" in result.stderr


def test_user_add_from_stdin(engine, database_url):
    result = recova(
        database_url,
        "user",
        "add",
        "boss",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert result.returncode == 0, result.stderr
    result = recova(
        database_url,
        "user",
        "add",
        "ann",
        "--role",
        "collector",
        "--team",
        "North",
        "--regions",
        "广东,广西",
        "--skill",
        "2",
        "--capacity",
        "40",
        "--password-stdin",
        stdin="another long password\n",
    )
    assert result.returncode == 0, result.stderr


def test_user_add_weak_password_fails(engine, database_url):
    result = recova(
        database_url,
        "user",
        "add",
        "boss",
        "--role",
        "admin",
        "--password-stdin",
        stdin="short\n",
    )
    assert result.returncode == 1
    assert "too short" in result.stderr


def test_unreachable_database_is_one_clear_line(database_url):
    from sqlalchemy.engine import make_url

    missing = make_url(database_url).set(database="recova_no_such_database")
    result = recova(
        missing.render_as_string(hide_password=False),
        "case",
        "show",
        "X",
        "--creditor",
        "Y",
    )
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "recova_no_such_database" in result.stderr
    assert "Traceback" not in result.stderr
