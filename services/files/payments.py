"""Read a creditor's payment file into typed payment rows and row issues.

Payment files come in the same shapes as placement files: CSV in any of the intake
encodings and delimiters, xlsx or xls, with title rows above the header and totals
rows. They go through the same readers, and only the header words and the row rules
differ.
Nothing here touches the database: matching to cases, repeats of earlier imports
and reversals of earlier payments are checked by `services.payments`.

Row rules:
- The transaction id (流水号) is required. A later row with the same id as an
  earlier valid row is a repeat: it is skipped and listed, not rejected.
- The amount is required and not zero. A negative amount is a reversal and must name
  the original transaction in its own column (原流水号, Original Transaction). A
  positive amount must not name one.
- The payment date is required.
"""

from dataclasses import dataclass
from typing import Any

import polars as pl

from services.files import FileRejected
from services.files import values as v
from services.files.decode import sniff_format
from services.files.headers import SYNONYMS as CASE_SYNONYMS
from services.files.headers import (
    TOTALS_KEYS,
    HeaderLayout,
    normalise_header,
    read_header,
)
from services.files.intake import RowIssue
from services.files.tables import RawTable, read_tables

PAYMENT_FIELDS = (
    "transaction_id",
    "case_no",
    "contract_no",
    "id_number",
    "name",
    "amount",
    "paid_on",
    "channel",
    "original_transaction",
    "note",
)
REQUIRED_FIELDS = ("transaction_id", "amount", "paid_on")
# Columns of `ParsedPayments.payments`, in this order.
ROW_COLUMNS = (
    "row",
    "transaction_id",
    "case_no",
    "id_number",
    "name",
    "amount",
    "paid_on",
    "channel",
    "original_transaction",
    "note",
)

# Header words per payment field, as creditors write them. Case number, contract
# number, ID number, name and note share the placement files' words.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "transaction_id": (
        "还款流水号",
        "流水号",
        "交易流水号",
        "交易流水",
        "交易号",
        "交易编号",
        "回款流水号",
        "入账流水号",
        "银行流水号",
        "支付流水号",
        "Transaction ID",
        "Transaction No",
        "Transaction Number",
        "Transaction #",
        "Txn ID",
        "Txn No",
        "Payment ID",
        "Payment Reference",
        "Receipt No",
    ),
    "case_no": CASE_SYNONYMS["case_no"],
    "contract_no": CASE_SYNONYMS["contract_no"],
    "id_number": CASE_SYNONYMS["id_number"],
    "name": CASE_SYNONYMS["name"],
    "amount": (
        "还款金额",
        "回款金额",
        "实还金额",
        "实收金额",
        "入账金额",
        "交易金额",
        "到账金额",
        "还款额",
        "金额",
        "Amount",
        "Payment Amount",
        "Paid Amount",
        "Amount Paid",
        "Repayment Amount",
        "Transaction Amount",
    ),
    "paid_on": (
        "还款日期",
        "回款日期",
        "还款时间",
        "入账日期",
        "入账时间",
        "交易日期",
        "交易时间",
        "到账日期",
        "支付日期",
        "日期",
        "Payment Date",
        "Paid On",
        "Date Paid",
        "Transaction Date",
        "Posting Date",
        "Value Date",
        "Date",
    ),
    "channel": (
        "还款渠道",
        "渠道",
        "还款方式",
        "支付方式",
        "支付渠道",
        "交易渠道",
        "Channel",
        "Payment Channel",
        "Payment Method",
        "Method",
    ),
    "original_transaction": (
        "原流水号",
        "原交易流水号",
        "原交易号",
        "原还款流水号",
        "被冲正流水号",
        "Original Transaction",
        "Original Transaction ID",
        "Original Transaction No",
        "Reversed Transaction",
        "Reverses",
    ),
    "note": (*CASE_SYNONYMS["note"], "摘要", "附言"),
}

FIELD_BY_KEY: dict[str, str] = {
    normalise_header(word): field for field, words in SYNONYMS.items() for word in words
}
HEADER_SEARCH_ROWS = 30
TOTALS_SEARCH_COLUMNS = 3
# A spreadsheet stores 15 significant digits, so a long id in scientific notation
# has lost its last digits.
LOST_DIGITS = r"(?i)^\d+(?:\.\d+)?E\+?\d+$"


@dataclass(frozen=True)
class RepeatedRow:
    """A row whose transaction id an earlier valid row of the file already has."""

    row: int
    transaction_id: str
    first_row: int


@dataclass(frozen=True)
class ParsedPayments:
    """The result of reading a payment file.

    `payments` contains the valid rows with the columns of `ROW_COLUMNS`: `row` is the
    row number a person sees, `amount` is Decimal(14, 2) (negative for a reversal),
    `paid_on` a Date and the rest text. A contract number column stands in for the
    case number when the file has none. `data_rows` counts the rows below the header
    that hold data, without blank and totals rows.
    """

    format: str
    encoding: str | None
    sheet: str | None
    header_row: int
    headers: list[str]
    mapping: dict[str, str | None]
    data_rows: int
    payments: pl.DataFrame
    rejected: list[RowIssue]
    repeated: list[RepeatedRow]
    file_issues: list[RowIssue]


def field_for_header(text: str) -> str | None:
    return FIELD_BY_KEY.get(normalise_header(text))


def parse_payments(
    content: bytes, filename: str, *, mapping: dict[str, str | None] | None = None
) -> ParsedPayments:
    """Read a payment file; raise FileRejected when no row can be read at all.

    `mapping` overrides the detected mapping for the headers it names (original
    header text -> payment field, or None to ignore the column).
    """
    format = sniff_format(content, filename)
    table, layout = _find_table(read_tables(content, format))
    fields = _payment_mapping(layout.headers, mapping)
    body = _body_rows(table, layout, fields)
    if body.height == 0:
        raise FileRejected("no_data_rows")

    header_row = int(table.rows[layout.row_index])
    frame, file_issues = _read_fields(body, layout, fields, header_row)
    frame, rejected = _rejections(frame, layout, fields)
    valid = frame.filter(~pl.col("rejected"))
    repeated = _repeats(valid)
    first_rows = valid.filter(pl.col("transaction_id").is_first_distinct())
    return ParsedPayments(
        format=table.format,
        encoding=table.encoding,
        sheet=table.sheet,
        header_row=header_row,
        headers=layout.headers,
        mapping=fields,
        data_rows=body.height,
        payments=first_rows.select(ROW_COLUMNS),
        rejected=rejected,
        repeated=repeated,
        file_issues=file_issues,
    )


def _find_table(tables) -> tuple[RawTable, HeaderLayout]:
    """Return the first table whose header names payment fields.

    A header row is one of the first 30 rows and has at least two payment words,
    one of them an amount. Sheets without one, such as notes, are skipped.
    """
    for table in tables:
        for index, row in enumerate(table.cells.head(HEADER_SEARCH_ROWS).iter_rows()):
            fields = {field_for_header(value) for value in row if value}
            fields.discard(None)
            if len(fields) >= 2 and "amount" in fields:
                return table, read_header(table.cells, index)
    raise FileRejected("payment_no_header", missing=", ".join(REQUIRED_FIELDS))


def _payment_mapping(
    headers: list[str], override: dict[str, str | None] | None
) -> dict[str, str | None]:
    """Map each header to a payment field, the first header of a field winning.

    The result must name a transaction id, an amount, a payment date and a case
    number, contract number or ID number.
    """
    mapping: dict[str, str | None] = {}
    for header in headers:
        field = field_for_header(header)
        mapping[header] = None if field in mapping.values() else field
    if override:
        _apply_override(mapping, override)

    fields = set(mapping.values())
    missing = [field for field in REQUIRED_FIELDS if field not in fields]
    if not fields & {"case_no", "contract_no", "id_number"}:
        missing.append("case_no")
    if missing:
        raise FileRejected(
            "payment_no_header", missing=", ".join(missing), headers=headers
        )
    return mapping


def _apply_override(
    mapping: dict[str, str | None], override: dict[str, str | None]
) -> None:
    chosen = {key: value for key, value in override.items() if key in mapping}
    seen: dict[str, str] = {}
    for header, field in chosen.items():
        if field is None:
            continue
        if field not in PAYMENT_FIELDS or field in seen:
            raise FileRejected("mapping_invalid", column=header, field=field)
        seen[field] = header
    for header, field in list(mapping.items()):
        if header in chosen:
            mapping[header] = chosen[header]
        elif field in seen:
            mapping[header] = None


def _source(position: int) -> str:
    return f"src_{position}"


def _position(headers: list[str], fields: dict[str, str | None], field: str):
    for position, header in enumerate(headers):
        if fields[header] == field:
            return position
    return None


def _body_rows(
    table: RawTable, layout: HeaderLayout, fields: dict[str, str | None]
) -> pl.DataFrame:
    """Return the rows below the header, without blank and totals rows.

    A totals row has 合计, Total or a similar word in one of its first three cells
    and no case number, contract number or ID number.
    """
    start = layout.row_index + 1
    sources = [
        pl.col(f"c{column}").alias(_source(position))
        for position, column in enumerate(layout.columns)
    ]
    body = table.cells.slice(start).select(sources)
    body = body.with_columns(row=table.rows.slice(start).cast(pl.Int32))

    id_position = _position(layout.headers, fields, "id_number")
    if id_position is not None:
        kinds = table.cell_kinds([layout.columns[id_position]]).slice(start)
        body = body.with_columns(id_kind=kinds.to_series(0))

    names = [_source(position) for position in range(len(layout.columns))]
    blank = pl.all_horizontal(~_filled(pl.col(name)) for name in names)
    references = [
        _filled(pl.col(_source(position)))
        for field in ("case_no", "contract_no", "id_number")
        if (position := _position(layout.headers, fields, field)) is not None
    ]
    no_reference = ~pl.any_horizontal(references)
    names_total = pl.any_horizontal(
        pl.col(name)
        .str.to_lowercase()
        .str.replace_all(r"[\s:：_\-./]", "")
        .is_in(list(TOTALS_KEYS))
        .fill_null(False)
        for name in names[:TOTALS_SEARCH_COLUMNS]
    )
    return body.filter(~blank & ~(no_reference & names_total))


def _filled(cell: pl.Expr) -> pl.Expr:
    return cell.str.strip_chars().fill_null("") != ""


def _read_fields(
    body: pl.DataFrame,
    layout: HeaderLayout,
    fields: dict[str, str | None],
    header_row: int,
) -> tuple[pl.DataFrame, list[RowIssue]]:
    """Add one typed column per payment field, plus flags for unreadable values."""

    def source(field: str) -> pl.Series:
        position = _position(layout.headers, fields, field)
        if position is None:
            return pl.Series(field, [None] * body.height, dtype=pl.Utf8)
        return body.get_column(_source(position))

    amount = v.parse_amount(source("amount"))
    number_cell = None
    if "id_kind" in body.columns:
        number_cell = (body.get_column("id_kind") == "number").fill_null(False)
    id_number, id_status = v.check_id_numbers(source("id_number"), number_cell)
    transaction_text = v.clean_text(source("transaction_id"))
    frame = body.with_columns(
        transaction_id=_reference(source("transaction_id")),
        transaction_lost_digits=transaction_text.str.contains(LOST_DIGITS).fill_null(
            False
        ),
        case_no=_case_number(source, fields),
        id_number=id_number,
        id_status=id_status,
        name=v.clean_text(source("name")),
        amount=amount,
        amount_unreadable=v.has_text(source("amount")) & amount.is_null(),
        channel=v.clean_text(source("channel")),
        original_transaction=_reference(source("original_transaction")),
        note=source("note"),
    ).with_columns(
        # An ID number that lost digits in a spreadsheet cannot identify anyone.
        id_number=pl.when(pl.col("id_status") != "lost_digits").then("id_number"),
        note=pl.when(pl.col("note").str.strip_chars() != "").then("note"),
    )
    return _read_dates(frame, layout, fields, header_row, source("paid_on"))


def _case_number(source, fields: dict[str, str | None]) -> pl.Series:
    # A contract number identifies the case only when the file has no case number.
    if "case_no" not in fields.values() and "contract_no" in fields.values():
        return v.clean_text(source("contract_no")).alias("case_no")
    return v.clean_text(source("case_no")).alias("case_no")


def _reference(text: pl.Series) -> pl.Series:
    """Tidy a transaction id: strip it, and drop the ".0" of a spreadsheet number."""
    cleaned = v.clean_text(v.half_width(text))
    return cleaned.str.replace(r"^(\d+)\.0+$", "${1}")


def _read_dates(
    frame: pl.DataFrame,
    layout: HeaderLayout,
    fields: dict[str, str | None],
    header_row: int,
    source: pl.Series,
) -> tuple[pl.DataFrame, list[RowIssue]]:
    """Read the payment dates, deciding day-first or month-first for the column.

    The order comes from values that can be read only one way, such as 25/03/2024.
    When no value decides it, values such as 03/05/2024 stay unread and are
    reported.
    """
    dates = v.split_dates(source)
    day_first, month_first, ambiguous = v.year_last_evidence(dates)
    order = None
    if day_first and not month_first:
        order = "dmy"
    elif month_first and not day_first:
        order = "mdy"

    value, two_way = v.parse_dates(dates, order)
    frame = frame.with_columns(
        paid_on=value,
        paid_on_ambiguous=two_way,
        paid_on_unreadable=v.has_text(source) & value.is_null() & ~two_way,
    )

    issues = []
    if ambiguous and (order is None):
        header = layout.headers[_position(layout.headers, fields, "paid_on")]
        examples = source.filter(two_way)
        first = examples[0] if len(examples) else None
        params = {"row": header_row, "column": header, "value": first}
        code = "date_order_ambiguous"
        issues.append(RowIssue(header_row, header, "paid_on", first, code, params))
    return frame, issues


# Row rules in the order their issues are listed for one row: (code, field, condition).
def _rules() -> list[tuple[str, str, pl.Expr]]:
    amount = pl.col("amount")
    original = pl.col("original_transaction")
    transaction = pl.col("transaction_id")
    return [
        ("transaction_id_missing", "transaction_id", transaction.is_null()),
        (
            "transaction_id_lost_digits",
            "transaction_id",
            pl.col("transaction_lost_digits"),
        ),
        ("amount_unreadable", "amount", pl.col("amount_unreadable")),
        ("amount_missing", "amount", amount.is_null() & ~pl.col("amount_unreadable")),
        ("amount_zero", "amount", amount == 0),
        ("reversal_without_original", "amount", (amount < 0) & original.is_null()),
        (
            "original_on_positive_amount",
            "original_transaction",
            (amount > 0) & original.is_not_null(),
        ),
        ("date_unreadable", "paid_on", pl.col("paid_on_unreadable")),
        ("date_order_ambiguous", "paid_on", pl.col("paid_on_ambiguous")),
        (
            "date_missing",
            "paid_on",
            pl.col("paid_on").is_null()
            & ~pl.col("paid_on_unreadable")
            & ~pl.col("paid_on_ambiguous"),
        ),
    ]


def _rejections(
    frame: pl.DataFrame, layout: HeaderLayout, fields: dict[str, str | None]
) -> tuple[pl.DataFrame, list[RowIssue]]:
    """Return `frame` with a `rejected` column, and the issues of rejected rows.

    Each rejected row gets the issue of the first rule it breaks.
    """
    rules = _rules()
    issues: dict[int, RowIssue] = {}
    for code, field, condition in rules:
        position = _position(layout.headers, fields, field)
        header = None if position is None else layout.headers[position]
        value = pl.lit(None, dtype=pl.Utf8)
        if position is not None:
            value = pl.col(_source(position))
        hits = frame.filter(condition.fill_null(False)).select("row", value.alias("v"))
        for row, text in hits.iter_rows():
            if row in issues:
                continue
            params: dict[str, Any] = {"row": row, "column": header, "value": text}
            issues[row] = RowIssue(row, header, field, text, code, params)
    flagged = frame.with_columns(rejected=pl.col("row").is_in(list(issues)))
    return flagged, [issues[row] for row in sorted(issues)]


def _repeats(valid: pl.DataFrame) -> list[RepeatedRow]:
    first_row = pl.col("row").first().over("transaction_id")
    repeats = valid.with_columns(first_row=first_row).filter(
        ~pl.col("transaction_id").is_first_distinct()
    )
    return [
        RepeatedRow(row=row, transaction_id=transaction, first_row=first)
        for row, transaction, first in repeats.select(
            "row", "transaction_id", "first_row"
        ).iter_rows()
    ]
