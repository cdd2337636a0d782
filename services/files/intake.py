"""Read a placement file into typed case rows, rejected rows and warnings.

The steps: sniff the format, read the tables as text, find the header, and drop blank
and totals rows. Then read every field with the readers in `values`, derive the
missing overdue date or days past due, and sort rows into cases, rejections and
warnings. Nothing here touches the database.

Row rules:
- case_no is required and must be unique in the file; the first occurrence is kept.
- total_due must be above zero. When the file has no total_due column, principal +
  interest + fees gives it. When the file has the column, a blank cell rejects the
  row even if principal is given, because the creditor's own total is missing.
- dpd_at_placement or overdue_since is required. Either derives the other from the
  placement date: the row's placement_date, else the batch date passed in, else today.
- An ID number that went through a spreadsheet number (digits lost) rejects the row.
- Warnings (the row is still imported): ID check digit wrong, ID malformed, phone
  invalid, total_due different from principal + interest + fees, name missing,
  customer type not recognised. Rejected rows get no warnings.
"""

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from services.files import FileRejected
from services.files import values as v
from services.files.decode import sniff_format
from services.files.headers import (
    DATE_FIELDS,
    FIELDS,
    HEADER_SEARCH_ROWS,
    MONEY_FIELDS,
    TOTALS_KEYS,
    HeaderLayout,
    find_header_row,
    read_header,
)
from services.files.tables import RawTable, read_tables

DATE_ORDERS = ("dmy", "mdy")
TOTALS_SEARCH_COLUMNS = 3
ISSUE_EXAMPLES = 5
READ_THREADS = min(4, os.cpu_count() or 1)
NEEDS_ESCAPE = r'[\\"\x00-\x1f]'
JSON_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\x00": "",
    **{chr(code): f"\\u{code:04x}" for code in range(1, 32) if code not in (9, 10, 13)},
}


@dataclass(frozen=True)
class RowIssue:
    """One problem found in the file, rendered into a message elsewhere.

    `row` is the row number shown in Excel or a text editor. For a column issue it
    is the header's row, and it is None for an issue about another sheet. `column`
    is the original header text and `value` the cell's text. `params` carries
    everything the message needs, including row, column and value.
    """

    row: int | None
    column: str | None
    field: str | None
    value: str | None
    code: str
    params: dict[str, Any]


@dataclass(frozen=True)
class ParsedCases:
    """The result of reading a placement file.

    `cases` contains the valid rows: `row`, every field in `headers.FIELDS` with its
    dtype (money Decimal(14, 2), dates Date, dpd_at_placement Int32, text Utf8) and
    `extra`, a JSON object per row of the unmapped columns' non-empty cells keyed by
    original header. `data_rows` counts the rows below the header that hold data,
    without title, blank and totals rows. `placement_date` and `recall_date` are set
    when the file's column for them contains one date throughout.
    """

    format: str
    encoding: str | None
    delimiter: str | None
    sheet: str | None
    header_row: int
    headers: list[str]
    mapping: dict[str, str | None]
    extra_headers: list[str]
    data_rows: int
    cases: pl.DataFrame
    rejected: list[RowIssue]
    warnings: list[RowIssue]
    file_issues: list[RowIssue]
    placement_date: date | None
    recall_date: date | None


def parse_cases(
    content: bytes,
    filename: str,
    *,
    mapping: dict[str, str | None] | None = None,
    placement_date: date | None = None,
    today: date,
    date_orders: dict[str, str] | None = None,
) -> ParsedCases:
    """Read a placement file; raise FileRejected when no row can be read at all.

    `mapping` overrides the detected mapping for the headers it names (original
    header text -> field or None). `date_orders` sets "dmy" or "mdy" for a date
    column (by header) whose year-last dates were reported as ambiguous.
    """
    format = sniff_format(content, filename)
    table, layout, other_sheets = _find_table(read_tables(content, format), mapping)
    layout = _apply_mapping(layout, mapping)
    body = _body_rows(table, layout)
    if body.height == 0:
        raise FileRejected("no_data_rows")

    header_row = int(table.rows[layout.row_index])
    reading = _read_fields(body, layout, header_row, date_orders or {})
    derived = _apply_rules(reading.frame, layout, placement_date or today)
    checked, rejected, warnings = _collect_issues(derived, layout)
    file_issues = reading.file_issues + [
        RowIssue(None, None, None, None, "sheet_not_imported", {"sheet": name})
        for name in other_sheets
    ]
    return ParsedCases(
        format=table.format,
        encoding=table.encoding,
        delimiter=table.delimiter,
        sheet=table.sheet,
        header_row=header_row,
        headers=layout.headers,
        mapping=layout.mapping,
        extra_headers=_extra_headers(layout),
        data_rows=body.height,
        cases=_valid_cases(checked),
        rejected=rejected,
        warnings=warnings,
        file_issues=file_issues,
        placement_date=_single_date(checked, "placement_date"),
        recall_date=_single_date(checked, "recall_date"),
    )


def _find_table(
    tables: Iterator[RawTable], mapping: dict[str, str | None] | None = None
) -> tuple[RawTable, HeaderLayout, list[str]]:
    """Return the first table with a header, and the names of later sheets with one.

    Sheets without a header, such as notes, are skipped silently. When no header
    words are recognised, a user's mapping finds the header row by its column names.
    """
    found: tuple[RawTable, HeaderLayout] | None = None
    other_sheets = []
    for table in tables:
        row_index = find_header_row(table.cells)
        if row_index is None and mapping:
            row_index = _row_naming_mapped_columns(table.cells, mapping)
        if row_index is None:
            continue
        if found is None:
            found = (table, read_header(table.cells, row_index))
        elif table.sheet is not None:
            other_sheets.append(table.sheet)

    if found is None:
        raise FileRejected("no_header")
    return found[0], found[1], other_sheets


def _row_naming_mapped_columns(
    cells: pl.DataFrame, mapping: dict[str, str | None]
) -> int | None:
    """Return the first row holding at least two of the columns a user mapped."""
    wanted = {header for header, field in mapping.items() if field}
    for index, row in enumerate(cells.head(HEADER_SEARCH_ROWS).iter_rows()):
        texts = {(value or "").strip() for value in row}
        if len(wanted & texts) >= min(2, len(wanted)):
            return index
    return None


def first_row_texts(content: bytes, filename: str) -> list[str]:
    """Return the first non-empty row of the first table, for mapping by hand.

    The page offers these as column names when no header word was recognised.
    """
    for table in read_tables(content, sniff_format(content, filename)):
        for row in table.cells.head(HEADER_SEARCH_ROWS).iter_rows():
            texts = [(value or "").strip() for value in row]
            if any(texts):
                return [text for text in texts if text]
    return []


def _apply_mapping(
    layout: HeaderLayout, override: dict[str, str | None] | None
) -> HeaderLayout:
    """Merge the caller's mapping into the detected one and check the result.

    A field the override assigns is taken away from any other column that the
    detection gave it to. The result must map a case number and an amount.
    """
    mapping = dict(layout.mapping)
    if override:
        chosen = {key: value for key, value in override.items() if key in mapping}
        _check_override(chosen)
        assigned = {value for value in chosen.values() if value}
        for header, field in mapping.items():
            if header in chosen:
                mapping[header] = chosen[header]
            elif field in assigned:
                mapping[header] = None

    fields = set(mapping.values())
    missing = [] if "case_no" in fields else ["case_no"]
    if not fields & {"total_due", "principal"}:
        missing.append("total_due")
    if missing:
        raise FileRejected(
            "no_header", missing=missing, headers=layout.headers, mapping=layout.mapping
        )

    serial = layout.serial_column
    if serial is not None and mapping[layout.headers[0]] is not None:
        serial = None
    return HeaderLayout(
        row_index=layout.row_index,
        columns=layout.columns,
        headers=layout.headers,
        mapping=mapping,
        serial_column=serial,
    )


def _check_override(chosen: dict[str, str | None]) -> None:
    seen: dict[str, str] = {}
    for header, field in chosen.items():
        if field is None:
            continue
        if field not in FIELDS:
            raise FileRejected("mapping_invalid", column=header, field=field)
        if field in seen:
            raise FileRejected(
                "mapping_invalid", column=header, field=field, other=seen[field]
            )
        seen[field] = header


def _extra_headers(layout: HeaderLayout) -> list[str]:
    return [
        header
        for header, column in zip(layout.headers, layout.columns, strict=True)
        if layout.mapping[header] is None and column != layout.serial_column
    ]


def _source_name(position: int) -> str:
    return f"src_{position}"


def _body_rows(table: RawTable, layout: HeaderLayout) -> pl.DataFrame:
    """Return the rows below the header, without blank and totals rows.

    Columns: `row`, `src_<n>` per kept column (text as read) and `id_kind` when an
    ID number column is mapped (what the cell held in the workbook).
    """
    start = layout.row_index + 1
    sources = [
        pl.col(f"c{column}").alias(_source_name(position))
        for position, column in enumerate(layout.columns)
    ]
    # One chunk per column: the CSV reader returns many, and every later step that
    # adds a single-chunk column would otherwise realign them all again.
    body = table.cells.slice(start).select(sources).rechunk()
    body = body.with_columns(row=table.rows.slice(start).cast(pl.Int32))

    id_position = _position_of(layout, "id_number")
    if id_position is not None:
        kinds = table.cell_kinds([layout.columns[id_position]]).slice(start)
        body = body.with_columns(id_kind=kinds.to_series(0))

    # Only a row without a case number can be blank or a totals row, so the
    # whole-row checks run on those rows alone. A case number cell that contains
    # 合计 or Total counts as empty.
    case_no = pl.col(_source_name(_position_of(layout, "case_no")))
    blank_case = ~case_no.str.contains(r"\S").fill_null(False)
    without_case = body.filter(blank_case | _is_totals_word(case_no))
    if without_case.height == 0:
        return body
    skipped = without_case.filter(_blank_row(layout) | _totals_row(layout))
    return body.filter(~pl.col("row").is_in(skipped.get_column("row").implode()))


def _names(layout: HeaderLayout) -> list[str]:
    return [_source_name(position) for position in range(len(layout.columns))]


def _position_of(layout: HeaderLayout, field: str) -> int | None:
    for position, header in enumerate(layout.headers):
        if layout.mapping[header] == field:
            return position
    return None


def _blank_row(layout: HeaderLayout) -> pl.Expr:
    return pl.all_horizontal(
        ~pl.col(name).str.contains(r"\S").fill_null(False) for name in _names(layout)
    )


def _totals_row(layout: HeaderLayout) -> pl.Expr:
    """True for a row with 合计/总计/Total/... in one of its first cells."""
    first_cells = _names(layout)[:TOTALS_SEARCH_COLUMNS]
    return pl.any_horizontal(_is_totals_word(pl.col(name)) for name in first_cells)


def _is_totals_word(cell: pl.Expr) -> pl.Expr:
    words = cell.str.to_lowercase().str.replace_all(r"[\s:：_\-./]", "")
    return words.is_in(list(TOTALS_KEYS)).fill_null(False)


@dataclass(frozen=True)
class _Reading:
    frame: pl.DataFrame
    file_issues: list[RowIssue]


def _read_fields(
    body: pl.DataFrame, layout: HeaderLayout, header_row: int, orders: dict[str, str]
) -> _Reading:
    """Add a typed column per field, plus flag columns for values that failed.

    Flags: `<field>__unreadable` for money, dates and dpd, `<field>__ambiguous` for
    dates, `id_status`, `phone_valid`, `contact_phone_valid`, `customer_type_unknown`.
    Unmapped fields become null columns of their dtype. Fields are read in parallel
    threads, which polars allows because it releases the GIL while it computes.
    """
    mapped = [field for field in FIELDS if _position_of(layout, field) is not None]

    def read_one(field: str) -> tuple[dict[str, pl.Series], RowIssue | None]:
        position = _position_of(layout, field)
        source = body.get_column(_source_name(position))
        if field not in DATE_FIELDS:
            return _read_field(field, source, body), None

        header = layout.headers[position]
        date_columns, code = _read_date_field(field, source, orders.get(header))
        if code is None:
            return date_columns, None
        two_way = source.filter(date_columns[f"{field}__ambiguous"])
        return date_columns, _date_issue(code, header, field, header_row, two_way)

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        results = list(pool.map(read_one, mapped))

    columns: dict[str, pl.Series | pl.Expr] = {
        field: pl.lit(None, dtype=_dtype(field))
        for field in FIELDS
        if field not in mapped
    }
    for read_columns, _ in results:
        columns.update(read_columns)
    file_issues = [issue for _, issue in results if issue is not None]
    frame = body.with_columns(**columns, extra=_extra_json(layout, body))
    return _Reading(frame=frame, file_issues=file_issues)


def _read_field(
    field: str, source: pl.Series, body: pl.DataFrame
) -> dict[str, pl.Series]:
    """Read one non-date field; return its column and its flag columns by name."""
    if field in MONEY_FIELDS or field == "dpd_at_placement":
        reader = v.parse_dpd if field == "dpd_at_placement" else v.parse_amount
        value = reader(source)
        return {field: value, f"{field}__unreadable": v.unread(source, value)}
    if field == "id_number":
        number_cell = (body.get_column("id_kind") == "number").fill_null(False)
        value, status = v.check_id_numbers(source, number_cell)
        return {field: value, "id_status": status}
    if field in ("phone", "contact_phone"):
        value, valid = v.normalise_phone(source)
        return {field: value, f"{field}_valid": valid | ~v.has_text(source)}
    if field == "customer_type":
        value = v.parse_customer_type(source)
        return {field: value, "customer_type_unknown": v.unread(source, value)}
    if field == "province":
        return {field: v.short_province(source)}
    if field == "note":
        # Notes are kept verbatim, surrounding spaces and line breaks included.
        verbatim = pl.select(pl.when(v.has_text(source)).then(source)).to_series()
        return {field: verbatim}
    return {field: v.clean_text(source)}


def _dtype(field: str) -> pl.DataType:
    if field in MONEY_FIELDS:
        return v.MONEY
    if field in DATE_FIELDS:
        return pl.Date()
    if field == "dpd_at_placement":
        return pl.Int32()
    return pl.Utf8()


def _read_date_field(
    field: str, source: pl.Series, chosen: str | None
) -> tuple[dict[str, pl.Series], str | None]:
    """Read a date column, deciding day-first or month-first for the whole column.

    The order is `chosen` when given, else what the values that can be read only
    one way show. A column whose year-last dates can be read both ways returns the
    issue code `date_order_ambiguous`; one with day-first and month-first values
    returns `date_order_conflict`. Values that read two ways stay null and flag
    their rows.
    """
    dates = v.split_dates(source)
    order, code = _date_order(dates, chosen)
    value, ambiguous = v.parse_dates(dates, order)
    unreadable = v.unread(source, value) & ~ambiguous
    columns = {
        field: value,
        f"{field}__unreadable": unreadable,
        f"{field}__ambiguous": ambiguous,
    }
    return columns, code


def _date_order(
    dates: v.DateColumn, chosen: str | None
) -> tuple[str | None, str | None]:
    """Return the column's date order ("dmy", "mdy" or None) and an issue code."""
    if chosen is not None:
        if chosen not in DATE_ORDERS:
            raise FileRejected("mapping_invalid", date_order=chosen)
        return chosen, None

    day_first, month_first, ambiguous = v.year_last_evidence(dates)
    if day_first and month_first:
        return None, "date_order_conflict"
    if day_first:
        return "dmy", None
    if month_first:
        return "mdy", None
    return None, ("date_order_ambiguous" if ambiguous else None)


def _date_issue(
    code: str, header: str, field: str, header_row: int, two_way: pl.Series
) -> RowIssue:
    """Build the file issue for a date column, with values that read two ways."""
    examples = two_way.head(ISSUE_EXAMPLES).to_list()
    first = examples[0] if examples else None
    params = {
        "row": header_row,
        "column": header,
        "value": first,
        "examples": examples,
        "count": two_way.len(),
    }
    return RowIssue(header_row, header, field, first, code, params)


def _extra_json(layout: HeaderLayout, body: pl.DataFrame) -> pl.Expr:
    """Build one JSON object per row from the unmapped columns' non-empty cells.

    Values are JSON-escaped with one `replace_many` pass. NUL characters are
    dropped because PostgreSQL's jsonb rejects them.
    """
    members = []
    for position, header in enumerate(layout.headers):
        column = layout.columns[position]
        if layout.mapping[header] is not None or column == layout.serial_column:
            continue
        source = pl.col(_source_name(position))
        escaped = source
        if body.get_column(_source_name(position)).str.contains(NEEDS_ESCAPE).any():
            escaped = source.str.replace_many(
                list(JSON_ESCAPES), list(JSON_ESCAPES.values())
            )
        key = json.dumps(header, ensure_ascii=False)
        member = pl.lit(f'{key}:"') + escaped + pl.lit('"')
        members.append(pl.when(source.str.contains(r"\S")).then(member))

    if not members:
        return pl.repeat(pl.lit("{}"), pl.len())
    joined = pl.concat_str(members, separator=",", ignore_nulls=True)
    return pl.lit("{") + joined.fill_null("") + pl.lit("}")


def _apply_rules(
    frame: pl.DataFrame, layout: HeaderLayout, base_date: date
) -> pl.DataFrame:
    """Derive total_due, overdue_since and dpd_at_placement where the file lacks them.

    The placement date for the derivation is the row's placement_date, else
    `base_date` (the batch's date, or today).
    """
    base = pl.coalesce(pl.col("placement_date"), pl.lit(base_date))
    given_dpd = pl.col("dpd_at_placement")
    given_overdue = pl.col("overdue_since")
    derived_overdue = (base - pl.duration(days=given_dpd)).cast(pl.Date)
    derived_dpd = (base - given_overdue).dt.total_days().cast(pl.Int32)

    mapped = set(layout.mapping.values())
    if "total_due" in mapped:
        total_due = pl.col("total_due")
    else:
        total_due = _component_sum().cast(v.MONEY, strict=False)
    return frame.with_columns(
        overdue_since=pl.coalesce(given_overdue, derived_overdue),
        dpd_at_placement=pl.coalesce(given_dpd, derived_dpd),
        total_due=total_due,
    )


def _component_sum() -> pl.Expr:
    return (
        pl.col("principal")
        + pl.col("interest").fill_null(0)
        + pl.col("fees").fill_null(0)
    )


@dataclass(frozen=True)
class _Rule:
    """A row check: rows where `condition` is true get an issue with `code`."""

    code: str
    field: str | None
    condition: pl.Expr
    params: dict[str, pl.Expr]


def _error_rules(layout: HeaderLayout, has_duplicates: bool) -> list[_Rule]:
    mapped = {field for field in layout.mapping.values() if field}
    rules = [_Rule("case_no_missing", "case_no", pl.col("case_no").is_null(), {})]
    for field in MONEY_FIELDS:
        if field in mapped:
            rules.append(_flag_rule("amount_unreadable", field, f"{field}__unreadable"))

    total_field = "total_due" if "total_due" in mapped else "principal"
    total_unreadable = pl.col(f"{total_field}__unreadable")
    rules += [
        _Rule(
            "total_due_missing",
            total_field,
            pl.col("total_due").is_null() & ~total_unreadable,
            {},
        ),
        _Rule("total_due_not_positive", total_field, pl.col("total_due") <= 0, {}),
    ]
    rules += _date_rules(mapped)
    rules += _overdue_rules(mapped)
    if "id_number" in mapped:
        lost = pl.col("id_status") == "lost_digits"
        rules.append(_Rule("id_number_lost_digits", "id_number", lost, {}))
    if has_duplicates:
        rules.append(_duplicate_rule())
    return rules


def _flag_rule(code: str, field: str, flag: str) -> _Rule:
    return _Rule(code, field, pl.col(flag), {})


def _date_rules(mapped: set[str]) -> list[_Rule]:
    rules = []
    for field in DATE_FIELDS:
        if field in mapped:
            rules.append(_flag_rule("date_unreadable", field, f"{field}__unreadable"))
            rules.append(
                _flag_rule("date_order_ambiguous", field, f"{field}__ambiguous")
            )
    return rules


def _overdue_rules(mapped: set[str]) -> list[_Rule]:
    """Rules for days past due: readable, present in some form, not negative."""
    unreadable = pl.lit(False)
    rules = []
    if "dpd_at_placement" in mapped:
        rules.append(
            _flag_rule(
                "dpd_unreadable", "dpd_at_placement", "dpd_at_placement__unreadable"
            )
        )
        unreadable = unreadable | pl.col("dpd_at_placement__unreadable")
    if "overdue_since" in mapped:
        unreadable = (
            unreadable
            | pl.col("overdue_since__unreadable")
            | pl.col("overdue_since__ambiguous")
        )

    field = "overdue_since" if "overdue_since" in mapped else "dpd_at_placement"
    missing = pl.col("dpd_at_placement").is_null() & ~unreadable
    rules.append(_Rule("overdue_missing", field, missing, {}))
    after = pl.col("dpd_at_placement") < 0
    rules.append(
        _Rule(
            "overdue_after_placement",
            field,
            after,
            {"overdue_since": pl.col("overdue_since").cast(pl.Utf8)},
        )
    )
    return rules


def _duplicate_rule() -> _Rule:
    case_no = pl.col("case_no")
    repeated = case_no.is_not_null() & ~case_no.is_first_distinct()
    first_row = pl.col("case_first_row")
    return _Rule("case_no_duplicate", "case_no", repeated, {"first_row": first_row})


def _warning_rules(layout: HeaderLayout) -> list[_Rule]:
    mapped = {field for field in layout.mapping.values() if field}
    rules = []
    if "id_number" in mapped:
        status = pl.col("id_status")
        rules.append(_Rule("id_number_checksum", "id_number", status == "checksum", {}))
        rules.append(_Rule("id_number_invalid", "id_number", status == "invalid", {}))
    for field in ("phone", "contact_phone"):
        if field in mapped:
            rules.append(_Rule("phone_invalid", field, ~pl.col(f"{field}_valid"), {}))
    if {"total_due", "principal"} <= mapped:
        rules.append(_mismatch_rule(mapped))
    rules.append(_Rule("name_missing", "name", pl.col("name").is_null(), {}))
    if "customer_type" in mapped:
        unknown = pl.col("customer_type_unknown")
        rules.append(_Rule("customer_type_unknown", "customer_type", unknown, {}))
    return rules


def _mismatch_rule(mapped: set[str]) -> _Rule:
    """total_due differs from principal + interest + fees, where all mapped ones are
    filled in (an unmapped component counts as zero)."""
    components = [
        field for field in ("principal", "interest", "fees") if field in mapped
    ]
    complete = pl.all_horizontal(pl.col(field).is_not_null() for field in components)
    expected = _component_sum()
    differs = complete & (expected != pl.col("total_due"))
    return _Rule(
        "total_due_mismatch",
        "total_due",
        differs,
        {
            "expected": expected.cast(pl.Utf8),
            "total_due": pl.col("total_due").cast(pl.Utf8),
        },
    )


def _collect_issues(
    frame: pl.DataFrame, layout: HeaderLayout
) -> tuple[pl.DataFrame, list[RowIssue], list[RowIssue]]:
    """Evaluate the rules; return the frame with a `rejected` column and the issues.

    Warnings are listed only for rows that are not rejected.
    """
    has_duplicates = bool(
        frame.get_column("case_no").drop_nulls().is_duplicated().any()
    )
    errors = _error_rules(layout, has_duplicates)
    warnings = _warning_rules(layout)
    error_flags = [f"error_{index}" for index in range(len(errors))]
    warning_flags = [f"warning_{index}" for index in range(len(warnings))]

    if has_duplicates:
        # Taken before any filter, so the first row is the file's first occurrence.
        first_row = pl.col("row").first().over("case_no")
        frame = frame.with_columns(case_first_row=first_row)
    flags = frame.select(
        *(
            rule.condition.fill_null(False).alias(name)
            for rule, name in zip(errors, error_flags, strict=True)
        ),
        *(
            rule.condition.fill_null(False).alias(name)
            for rule, name in zip(warnings, warning_flags, strict=True)
        ),
    )
    rejected = flags.select(pl.any_horizontal(error_flags)).to_series()
    warned = flags.select(pl.any_horizontal(warning_flags)).to_series() & ~rejected
    frame = frame.with_columns(rejected=rejected)

    flagged = pl.concat([frame, flags], how="horizontal").filter(rejected | warned)
    rejected_issues = _issues(flagged, layout, errors, error_flags)
    imported = flagged.filter(~pl.col("rejected"))
    warning_issues = _issues(imported, layout, warnings, warning_flags)
    return frame, rejected_issues, warning_issues


def _issues(
    flagged: pl.DataFrame, layout: HeaderLayout, rules: list[_Rule], flags: list[str]
) -> list[RowIssue]:
    """List the issues of `rules` in row order, then rule order within a row."""
    issues = []
    for order, (rule, flag) in enumerate(zip(rules, flags, strict=True)):
        header = _header_of(layout, rule.field)
        hits = flagged.filter(pl.col(flag)).select(
            pl.col("row"),
            _source_of(layout, rule.field).alias("value"),
            *(expression.alias(name) for name, expression in rule.params.items()),
        )
        for record in hits.iter_rows(named=True):
            row = record.pop("row")
            value = record.pop("value")
            params = {"row": row, "column": header, "value": value, **record}
            issue = RowIssue(row, header, rule.field, value, rule.code, params)
            issues.append((row, order, issue))
    return [issue for _, _, issue in sorted(issues, key=lambda item: item[:2])]


def _header_of(layout: HeaderLayout, field: str | None) -> str | None:
    position = None if field is None else _position_of(layout, field)
    return None if position is None else layout.headers[position]


def _source_of(layout: HeaderLayout, field: str | None) -> pl.Expr:
    position = None if field is None else _position_of(layout, field)
    if position is None:
        return pl.lit(None, dtype=pl.Utf8)
    return pl.col(_source_name(position))


def _valid_cases(frame: pl.DataFrame) -> pl.DataFrame:
    # Selecting first means the filter copies 25 columns, not every flag column too.
    cases = frame.select("row", *FIELDS, "extra", "rejected")
    return cases.filter(~pl.col("rejected")).drop("rejected")


def _single_date(frame: pl.DataFrame, field: str) -> date | None:
    """Return the column's date when every filled cell contains the same one."""
    dates = frame.get_column(field).drop_nulls().unique()
    return dates[0] if len(dates) == 1 else None
