"""The three placement fixtures parse to the results recorded in expected.json."""

import io
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from services.files.export import write_csv, write_xlsx
from services.files.intake import ParsedCases, parse_cases

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
CASE_FILES = [name for name, answer in EXPECTED.items() if "imported" in answer]
# A date after every placement date in the fixtures, so a row's own 委案日期 and
# not "today" must drive the derived days past due.
TODAY = date(2024, 12, 20)

# expected.json states each rule in words; these are the issue codes for them.
REASON_CODES = {
    "total_due missing": "total_due_missing",
    "total_due not positive": "total_due_not_positive",
    "case_no duplicate in file": "case_no_duplicate",
    "case_no missing": "case_no_missing",
    "overdue_days missing": "overdue_missing",
    "overdue date missing": "overdue_missing",
    "id_number lost digits": "id_number_lost_digits",
    "id_number checksum": "id_number_checksum",
    "phone invalid": "phone_invalid",
}


def reason_code(reason: str) -> str:
    for words, code in REASON_CODES.items():
        if reason.startswith(words):
            return code
    raise AssertionError(f"no issue code for the expected reason {reason!r}")


@pytest.fixture(scope="module", params=CASE_FILES)
def case_file(request) -> tuple[str, ParsedCases]:
    name = request.param
    content = (FIXTURES / name).read_bytes()
    return name, parse_cases(content, name, today=TODAY)


def case_row(parsed: ParsedCases, case_no: str) -> dict:
    rows = parsed.cases.filter(parsed.cases["case_no"] == case_no).to_dicts()
    assert len(rows) == 1, f"{case_no} should be imported once"
    return rows[0]


def test_fixture_counts(case_file):
    name, parsed = case_file
    expected = EXPECTED[name]
    assert parsed.data_rows == expected["data_rows"]
    assert parsed.cases.height == expected["imported"]


def test_fixture_rejected_rows(case_file):
    name, parsed = case_file
    expected = EXPECTED[name]
    assert sorted({issue.row for issue in parsed.rejected}) == expected["rejected_rows"]

    for row, reason in expected["rejected_reasons"].items():
        codes = {issue.code for issue in parsed.rejected if issue.row == int(row)}
        assert reason_code(reason) in codes, f"row {row}: {reason}"


def test_fixture_duplicate_names_first_row(case_file):
    name, parsed = case_file
    for row, reason in EXPECTED[name]["rejected_reasons"].items():
        first = re.search(r"first at row (\d+)", reason)
        if first is None:
            continue
        issue = next(i for i in parsed.rejected if i.row == int(row))
        assert issue.params["first_row"] == int(first.group(1))


def test_fixture_warnings(case_file):
    name, parsed = case_file
    expected = EXPECTED[name]
    warned = sorted({issue.row for issue in parsed.warnings})
    assert warned == expected.get("warning_rows", [])

    for row, reason in expected.get("warning_reasons", {}).items():
        codes = {issue.code for issue in parsed.warnings if issue.row == int(row)}
        assert reason_code(reason) in codes, f"row {row}: {reason}"


def test_fixture_total_due_sum(case_file):
    name, parsed = case_file
    total = sum(parsed.cases["total_due"].to_list(), Decimal("0.00"))
    assert total == Decimal(EXPECTED[name]["total_due_imported"])


def test_fixture_spot_checks(case_file):
    name, parsed = case_file
    for case_no, checks in EXPECTED[name]["spot_checks"].items():
        row = case_row(parsed, case_no)
        for field, expected in checks.items():
            if field == "note_kept_verbatim":
                assert row["note"] == expected, case_no
            elif field == "total_due":
                assert row["total_due"] == Decimal(expected), case_no
            elif field in ("dpd_at_placement", "phone", "id_number"):
                assert row[field] == expected, f"{case_no} {field}"


def test_fixture_extra_columns(case_file):
    name, parsed = case_file
    kept_headers = EXPECTED[name].get("extra_columns_kept", [])
    assert set(kept_headers) <= set(parsed.extra_headers)
    for header in kept_headers:
        assert parsed.mapping[header] is None
        values = [json.loads(text).get(header) for text in parsed.cases["extra"]]
        assert all(values), f"every imported row keeps {header}"


def test_fixture_encoding_and_sheet(case_file):
    name, parsed = case_file
    expected = EXPECTED[name]
    if "encoding" in expected:
        assert parsed.encoding == expected["encoding"]
    if "sheet" in expected:
        assert parsed.sheet == expected["sheet"]
    if "header_row" in expected:
        assert parsed.header_row == expected["header_row"]


def test_fixture_batch_dates(case_file):
    name, parsed = case_file
    expected = EXPECTED[name]
    if "placement_date" in expected:
        assert parsed.placement_date == date.fromisoformat(expected["placement_date"])
    if "recall_date" in expected:
        assert parsed.recall_date == date.fromisoformat(expected["recall_date"])


def test_fixture_has_no_file_issues(case_file):
    _, parsed = case_file
    assert parsed.file_issues == []


def formula_checks() -> list[tuple[str, str, str]]:
    checks = []
    for name in CASE_FILES:
        for case_no, fields in EXPECTED[name]["spot_checks"].items():
            if "export_cell_must_not_start_with" in fields:
                forbidden = fields["export_cell_must_not_start_with"]
                checks.append((name, case_no, forbidden))
    return checks


@pytest.mark.parametrize(("name", "case_no", "forbidden"), formula_checks())
def test_exported_note_never_formula(name, case_no, forbidden):
    parsed = parse_cases((FIXTURES / name).read_bytes(), name, today=TODAY)
    original = case_row(parsed, case_no)["note"]

    workbook = openpyxl.load_workbook(io.BytesIO(write_xlsx({"cases": parsed.cases})))
    sheet = workbook.active
    header = [cell.value for cell in sheet[1]]
    note_column = header.index("note")
    case_column = header.index("case_no")
    row = next(r for r in sheet.iter_rows(min_row=2) if r[case_column].value == case_no)
    cell = row[note_column]
    assert cell.data_type == "s"
    assert not cell.value.startswith(forbidden)
    assert cell.value == "'" + original

    lines = write_csv(parsed.cases).decode("utf-8-sig")
    assert f'"{forbidden}' not in lines
    assert f",{forbidden}" not in lines
