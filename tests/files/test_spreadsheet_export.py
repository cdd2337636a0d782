"""xlsx and CSV export: formula-like text stays text, money and dates keep types."""

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import openpyxl
import polars as pl
import pytest

from services.files.export import neutralise_text, write_csv, write_xlsx

FORMULA_LIKE = [
    '=HYPERLINK("http://example.invalid","click")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
]


def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "note": [*FORMULA_LIKE, "plain", None],
            "total_due": [Decimal("1234.5")] * 7 + [None],
            "overdue_since": [date(2024, 11, 10)] * 8,
            "updated_at": [datetime(2024, 11, 15, 9, 30)] * 8,
            "dpd": list(range(8)),
        },
        schema_overrides={"total_due": pl.Decimal(14, 2)},
    )


def read_back(content: bytes) -> openpyxl.worksheet.worksheet.Worksheet:
    return openpyxl.load_workbook(io.BytesIO(content)).active


@pytest.mark.parametrize("text", FORMULA_LIKE)
def test_neutralise_prefixes_formula_start(text):
    assert neutralise_text(text) == "'" + text


def test_neutralise_keeps_plain_text():
    assert neutralise_text("说过周五还 = 好") == "说过周五还 = 好"


def test_xlsx_formula_like_text_stays_string():
    sheet = read_back(write_xlsx({"cases": frame()}))
    for row, text in enumerate(FORMULA_LIKE, start=2):
        cell = sheet.cell(row=row, column=1)
        assert cell.data_type == "s", text
        # openpyxl 3.1 returns a carriage return as its OOXML escape _x000D_.
        assert cell.value.replace("_x000D_", "\r") == "'" + text


def test_xlsx_money_and_dates_keep_types():
    sheet = read_back(write_xlsx({"cases": frame()}))
    money = sheet.cell(row=2, column=2)
    assert money.data_type == "n"
    assert money.value == 1234.5
    assert money.number_format == "#,##0.00"
    assert sheet.cell(row=2, column=3).value == datetime(2024, 11, 10)
    assert sheet.cell(row=2, column=3).number_format == "yyyy-mm-dd"
    assert sheet.cell(row=2, column=4).value == datetime(2024, 11, 15, 9, 30)
    assert sheet.cell(row=9, column=2).value is None


def test_xlsx_header_bold_and_widths():
    sheet = read_back(write_xlsx({"cases": frame()}))
    assert [cell.value for cell in sheet[1]] == frame().columns
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.column_dimensions["A"].width > len("note")


def test_xlsx_sheet_names_made_valid():
    content = write_xlsx({"rejected/rows: [x]": frame(), "r" * 40: frame()})
    names = openpyxl.load_workbook(io.BytesIO(content)).sheetnames
    assert names == ["rejected_rows_ _x_", "r" * 31]


def test_csv_has_bom_and_neutralised_text():
    content = write_csv(frame())
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert rows[0] == frame().columns
    assert [row[0] for row in rows[1:7]] == ["'" + text for text in FORMULA_LIKE]
    assert rows[1][1] == "1234.50"
    assert rows[1][2] == "2024-11-10"
