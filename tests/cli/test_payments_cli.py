"""`recova import payments`, run as a subprocess against the test database."""

import json

from tests.cli.test_cli import recova
from tests.conftest import FIXTURES

EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
PAYMENTS = EXPECTED["payments_zh.csv"]


def import_both(database_url, *extra):
    cases = recova(
        database_url,
        "import",
        "cases",
        str(FIXTURES / "cases_zh_gbk.csv"),
        "--creditor",
        "CLI Bank",
    )
    assert cases.returncode == 0, cases.stderr
    return recova(
        database_url,
        "import",
        "payments",
        str(FIXTURES / "payments_zh.csv"),
        "--creditor",
        "CLI Bank",
        *extra,
    )


def test_payments_json_report(engine, database_url):
    result = import_both(database_url, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["posted"] == PAYMENTS["posted"]
    assert report["unmatched"] == PAYMENTS["unmatched"]
    assert [
        {"row": item["row"], "transaction": item["transaction"]}
        for item in report["duplicates_skipped"]
    ] == PAYMENTS["duplicates_skipped"]
    assert report["rejected"] == []
    assert report["paid_in_full"] == PAYMENTS["paid_in_full"]
    assert report["overpaid"] == PAYMENTS["overpaid"]
    assert report["recovered_total"] == PAYMENTS["recovered_total"]


def test_payments_text_report(engine, database_url):
    result = import_both(database_url)
    assert result.returncode == 0, result.stderr
    assert "5 posted (324144.84 net)" in result.stdout
    assert "unmatched: TX0004" in result.stdout
    assert "overpaid: GBK2411000005 by 88.00" in result.stdout


def test_rejected_rows_listed(engine, database_url, tmp_path):
    import_both(database_url)
    reversal = tmp_path / "reversal.csv"
    reversal.write_text(
        "还款流水号,案件编号,还款金额,还款日期,原流水号\n"
        "R1,GBK2411000002,-10.00,2024-12-05,TX9999\n",
        encoding="utf-8",
    )
    result = recova(
        database_url,
        "import",
        "payments",
        str(reversal),
        "--creditor",
        "CLI Bank",
        "--json",
    )
    issue = json.loads(result.stdout)["rejected"][0]
    assert result.returncode == 0
    assert {"row", "column", "value", "code", "message"} <= set(issue)
    assert issue["code"] == "reversal_original_not_posted"
    assert "TX9999" in issue["message"]


def test_unknown_creditor_exits_one(engine, database_url):
    result = recova(
        database_url,
        "import",
        "payments",
        str(FIXTURES / "payments_zh.csv"),
        "--creditor",
        "Nobody",
        "--json",
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == "creditor_not_found"


def test_missing_file_is_usage_error(engine, database_url, tmp_path):
    result = recova(
        database_url,
        "import",
        "payments",
        str(tmp_path / "none.csv"),
        "--creditor",
        "CLI Bank",
    )
    assert result.returncode == 2
