"""Write frames as xlsx or CSV files that no spreadsheet can run as formulas.

A text cell that begins with =, +, -, @, a tab or a carriage return could be read as
a formula by Excel, LibreOffice or a CSV import (CSV injection). Such text is always
written with a leading apostrophe added to the text itself, so it stays visible,
begins with a harmless character in every program, and is written as a string
cell (`write_string`). Numbers, dates and money columns are written as numbers and
dates, never as text, so they need no prefix.
"""

import io
import json
import re
import unicodedata
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SAFE_PREFIX = "'"
MONEY_FORMAT = "#,##0.00"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
WIDTH_SAMPLE_ROWS = 1000
MIN_WIDTH, MAX_WIDTH = 6, 60
SHEET_NAME_LIMIT = 31
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def neutralise_text(text: str) -> str:
    """Prefix an apostrophe when the text would start a formula."""
    return SAFE_PREFIX + text if text.startswith(FORMULA_STARTS) else text


def neutralise_column(text: pl.Expr) -> pl.Expr:
    starts_formula = text.str.contains(r"^[=+\-@\t\r]").fill_null(False)
    return pl.when(starts_formula).then(pl.lit(SAFE_PREFIX) + text).otherwise(text)


def write_csv(frame: pl.DataFrame) -> bytes:
    """Write a CSV file in UTF-8 with a BOM, which Excel needs to show Chinese text.

    Text columns are neutralised like xlsx cells; nested columns are written as JSON
    (structs) or comma-separated text (lists).
    """
    flat = frame.with_columns(
        _as_text(frame, name).alias(name)
        for name, dtype in frame.schema.items()
        if _is_text(dtype)
    )
    safe = flat.with_columns(
        neutralise_column(pl.col(name)).alias(name)
        for name, dtype in flat.schema.items()
        if dtype == pl.Utf8
    )
    return b"\xef\xbb\xbf" + safe.write_csv().encode("utf-8")


def _is_text(dtype: pl.DataType) -> bool:
    return isinstance(dtype, (pl.Categorical, pl.Enum, pl.Struct, pl.List))


def _as_text(frame: pl.DataFrame, name: str) -> pl.Expr:
    dtype = frame.schema[name]
    column = pl.col(name)
    if isinstance(dtype, pl.Struct):
        return column.struct.json_encode()
    if isinstance(dtype, pl.List):
        return column.list.eval(pl.element().cast(pl.Utf8)).list.join(", ")
    return column.cast(pl.Utf8)


def write_xlsx(sheets: dict[str, pl.DataFrame]) -> bytes:
    """Write one worksheet per frame, with a bold header row and fitted widths.

    Decimal columns become numbers shown with two decimals, dates and datetimes
    become date cells, and text goes through `neutralise_text`. Sheet names are cut
    to Excel's 31 characters and lose the characters Excel forbids.
    """
    buffer = io.BytesIO()
    options = {
        "in_memory": True,
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
    }
    with xlsxwriter.Workbook(buffer, options) as workbook:
        formats = {
            "header": workbook.add_format({"bold": True}),
            "money": workbook.add_format({"num_format": MONEY_FORMAT}),
            "date": workbook.add_format({"num_format": DATE_FORMAT}),
            "datetime": workbook.add_format({"num_format": DATETIME_FORMAT}),
        }
        used: set[str] = set()
        for name, frame in sheets.items():
            worksheet = workbook.add_worksheet(_sheet_name(name, used))
            _write_sheet(worksheet, frame, formats)
    return buffer.getvalue()


def _sheet_name(name: str, used: set[str]) -> str:
    base = _SHEET_NAME_FORBIDDEN.sub("_", name).strip("'") or "Sheet"
    base = base[:SHEET_NAME_LIMIT]
    candidate, counter = base, 2
    while candidate.lower() in used:
        suffix = f" ({counter})"
        candidate = base[: SHEET_NAME_LIMIT - len(suffix)] + suffix
        counter += 1
    used.add(candidate.lower())
    return candidate


def _write_sheet(worksheet: Worksheet, frame: pl.DataFrame, formats: dict) -> None:
    for column, name in enumerate(frame.columns):
        worksheet.write_string(0, column, neutralise_text(name), formats["header"])
        worksheet.set_column(column, column, _column_width(frame, name))
    worksheet.freeze_panes(1, 0)

    for row, values in enumerate(frame.iter_rows(), start=1):
        for column, value in enumerate(values):
            _write_cell(worksheet, row, column, value, formats)


def _write_cell(
    worksheet: Worksheet, row: int, column: int, value: Any, formats: dict
) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        worksheet.write_boolean(row, column, value)
    elif isinstance(value, Decimal):
        worksheet.write_number(row, column, float(value), formats["money"])
    elif isinstance(value, (int, float)):
        worksheet.write_number(row, column, value)
    elif isinstance(value, datetime):
        # xlsx has no time zones; aware datetimes are written as their wall time.
        worksheet.write_datetime(
            row, column, value.replace(tzinfo=None), formats["datetime"]
        )
    elif isinstance(value, date):
        worksheet.write_datetime(row, column, value, formats["date"])
    else:
        worksheet.write_string(row, column, neutralise_text(_text(value)))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(item) for item in value)
    return str(value)


def _column_width(frame: pl.DataFrame, name: str) -> float:
    """Width in characters from the header and the first rows; CJK counts double."""
    sample = frame.get_column(name).head(WIDTH_SAMPLE_ROWS)
    texts = [name, *(_display_text(value) for value in sample.to_list())]
    widest = max(_display_width(text) for text in texts)
    return min(max(widest + 2, MIN_WIDTH), MAX_WIDTH)


def _display_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return _text(value) if not isinstance(value, (date, int, float)) else str(value)


def _display_width(text: str) -> int:
    longest_line = max(text.splitlines() or [""], key=len)
    return sum(
        2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in longest_line
    )
