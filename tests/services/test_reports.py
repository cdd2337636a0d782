"""The monthly creditor statement and the safety of every KPI download."""

import csv
import io
from datetime import date
from decimal import Decimal

import polars as pl
import pytest
from openpyxl import load_workbook

from recova.errors import NotFound, PermissionDenied
from services import reports
from services.actors import Actor
from services.files.export import write_csv, write_xlsx
from tests.kpi_portfolio import build_portfolio

MANAGER = Actor(id=None, username="mia", role="manager", language="en")
DANGEROUS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", "plain"]


def batch_id(session, name: str) -> int:
    from sqlalchemy import text

    return session.scalar(text("SELECT id FROM batches WHERE name = :n"), {"n": name})


def test_statement_of_october(session):
    build_portfolio(session)
    statement = reports.creditor_statement(
        session=session,
        actor=MANAGER,
        batch_id=batch_id(session, "September"),
        month=date(2026, 10, 15),
    )
    summary = statement.summary.row(0, named=True)
    assert summary["month"] == "2026-10"
    assert summary["cases"] == 3
    assert summary["recovered_month"] == Decimal("2500.00")
    assert summary["commission"] == Decimal("500.00")
    by_case = {row["case_no"]: row for row in statement.cases.iter_rows(named=True)}
    assert by_case["C"]["recovered_month"] == Decimal("500.00")
    assert by_case["C"]["payments"] == 2
    assert by_case["B"]["status"] == "Paid"


def test_statement_workbook_has_two_sheets(session):
    build_portfolio(session)
    statement = reports.creditor_statement(
        session=session,
        actor=MANAGER,
        batch_id=batch_id(session, "September"),
        month=date(2026, 10, 1),
    )
    book = load_workbook(io.BytesIO(reports.statement_workbook(statement, "en")))
    assert book.sheetnames == ["Summary", "Cases"]
    assert book["Summary"]["F1"].value == "Recovered in the month"
    assert book["Summary"]["F2"].value == 2500.0


def test_statement_unknown_batch(session):
    with pytest.raises(NotFound):
        reports.creditor_statement(
            session=session, actor=MANAGER, batch_id=999, month=date(2026, 10, 1)
        )


def test_statement_closed_to_collectors(session):
    collector = Actor(id=1, username="ann", role="collector")
    with pytest.raises(PermissionDenied):
        reports.creditor_statement(
            session=session, actor=collector, batch_id=1, month=date(2026, 10, 1)
        )


def test_xlsx_cells_never_formulas():
    frame = pl.DataFrame({"text": DANGEROUS})
    sheet = load_workbook(io.BytesIO(write_xlsx({"t": frame}))).active
    values = [sheet.cell(row=n, column=1).value for n in range(2, 2 + len(DANGEROUS))]
    for original, value in zip(DANGEROUS, values, strict=True):
        if original == "plain":
            assert value == "plain"
        else:
            # xlsx stores a carriage return as the escape _x000D_.
            assert value.startswith("'"), original
            assert value[1:].replace("_x000D_", "\r") == original
    for row in sheet.iter_rows(min_row=2):
        assert row[0].data_type == "s"


def test_csv_cells_never_formulas():
    frame = pl.DataFrame({"text": DANGEROUS})
    content = write_csv(frame).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(content, newline="")))
    values = [row[0] for row in rows[1:]]
    for original, value in zip(DANGEROUS, values, strict=True):
        expected = original if original == "plain" else "'" + original
        assert value == expected, original
