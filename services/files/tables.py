"""Turn a CSV or Excel file into a grid of strings with the row numbers Excel shows.

Every cell is read as text, so ID numbers, phones and case numbers are never parsed as
numbers on the way in. Row numbers are the ones Excel shows: the spreadsheet row for a
workbook and the record number for a CSV file (a quoted value with a line break in it
is one record, as Excel shows it).
"""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import fastexcel
import polars as pl

from services.files import FileRejected
from services.files.decode import decode_text, detect_delimiter

# calamine writes a date cell as text in this form, whatever the cell's number
# format. Date cells at midnight are shortened to the ISO date when a sheet is read.
EXCEL_DATETIME_TEXT = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
EXCEL_DATE_TEXT = r"^\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}:\d{2})?$"
MIDNIGHT = " 00:00:00"
CSV_FIELD_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class RawTable:
    """One sheet or CSV file as text cells.

    `cells` has one Utf8 column per source column, named c0, c1, ..., and one row per
    source row from the top of the sheet or file. `rows` contains the row number
    Excel shows for each row of `cells`.
    """

    format: str
    cells: pl.DataFrame
    rows: pl.Series
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    workbook: bytes | None = field(default=None, repr=False)

    def cell_kinds(self, columns: list[int]) -> pl.DataFrame:
        """Return the kind of each cell in the given columns, as the source stored it.

        Values are "number", "boolean", "date" or "text", and null for an empty cell.
        CSV cells are all text. For a workbook this reads those columns again, so ask
        only for the columns where the kind matters (an ID number stored as a number
        has lost its last digits).
        """
        texts = self.cells.select(f"c{index}" for index in columns)
        if self.workbook is None or not columns:
            return texts.select(
                pl.when(pl.col(name).is_not_null()).then(pl.lit("text")).alias(name)
                for name in texts.columns
            )

        numbers = _number_cells(self.workbook, self.sheet or 0, columns, self.cells)
        return pl.concat([texts, numbers], how="horizontal").select(
            _kind_expression(f"c{index}") for index in columns
        )


def _kind_expression(name: str) -> pl.Expr:
    text = pl.col(name)
    is_number = pl.col(f"n_{name}").is_not_null()
    return (
        pl.when(text.is_null())
        .then(None)
        .when(is_number & text.is_in(["true", "false"]))
        .then(pl.lit("boolean"))
        .when(is_number)
        .then(pl.lit("number"))
        .when(text.str.contains(EXCEL_DATE_TEXT))
        .then(pl.lit("date"))
        .otherwise(pl.lit("text"))
        .alias(name)
    )


def _number_cells(
    workbook: bytes, sheet: str | int, columns: list[int], cells: pl.DataFrame
) -> pl.DataFrame:
    """Load columns again as booleans: calamine gives a value only for number cells.

    Text, date and error cells come back null, so a non-null value marks a cell that
    Excel stored as a number (or as TRUE/FALSE).
    """
    reader = fastexcel.read_excel(workbook)
    sheet_data = reader.load_sheet(
        sheet, header_row=None, skip_rows=0, dtypes="boolean", use_columns=columns
    )
    frame = sheet_data.to_polars()
    frame.columns = [f"n_c{index}" for index in columns]
    if frame.height < cells.height:
        padding = pl.DataFrame(
            {name: [None] * (cells.height - frame.height) for name in frame.columns},
            schema=frame.schema,
        )
        frame = pl.concat([frame, padding])
    return frame.head(cells.height)


def read_tables(content: bytes, format: str) -> Iterator[RawTable]:
    """Yield the file's tables: one for a text file, one per sheet for a workbook.

    Visible sheets come first, in workbook order, then hidden ones.
    """
    if format == "text":
        yield read_text_table(content)
        return
    yield from _read_workbook(content, format)


def read_text_table(content: bytes) -> RawTable:
    """Decode a CSV or tab-separated file and read it as one table of text cells."""
    decoded = decode_text(content)
    delimiter = detect_delimiter(decoded.sample)
    try:
        cells = _read_csv(decoded.utf8, delimiter)
    except UnicodeDecodeError:
        # Only the start of the file was checked, and the rest is not UTF-8.
        decoded = decode_text(content, check_all_utf8=True)
        delimiter = detect_delimiter(decoded.sample)
        cells = _read_csv(decoded.utf8, delimiter)

    cells.columns = [f"c{index}" for index in range(cells.width)]
    return RawTable(
        format="csv",
        cells=cells,
        rows=pl.int_range(1, cells.height + 1, eager=True, dtype=pl.Int64),
        encoding=decoded.encoding,
        delimiter=delimiter,
    )


def _read_csv(data: bytes, delimiter: str) -> pl.DataFrame:
    """Read CSV bytes; raise UnicodeDecodeError when they are not valid UTF-8.

    A file of nothing but whitespace (or a BOM alone) is rejected as empty.

    polars is tried first. It keeps a blank line as an all-null row and a quoted
    line break inside its value, so row i of the frame is record i + 1. It raises
    when a record has more fields than the first one, and those files go to the
    csv module, which reads any field count.
    """
    if not data or data.isspace():
        raise FileRejected("file_empty")
    try:
        return pl.read_csv(
            data,
            has_header=False,
            separator=delimiter,
            quote_char='"',
            infer_schema=False,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as error:
        if "utf-8" in str(error).lower():
            raise UnicodeDecodeError("utf-8", b"", 0, 1, str(error)) from None
    return _read_csv_exact(data, delimiter)


def _read_csv_exact(data: bytes, delimiter: str) -> pl.DataFrame:
    """Read with the csv module, padding short records, for files polars cannot read."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
    text = data.decode("utf-8")
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as error:
        raise FileRejected("not_a_table", kind="csv", detail=str(error)) from None

    width = max((len(record) for record in records), default=0)
    columns: list[list[str | None]] = [[] for _ in range(width)]
    for record in records:
        for index in range(width):
            value = record[index] if index < len(record) else None
            columns[index].append(value or None)
    return pl.DataFrame(
        {f"c{index}": values for index, values in enumerate(columns)},
        schema={f"c{index}": pl.Utf8 for index in range(width)},
    )


def _read_workbook(content: bytes, format: str) -> Iterator[RawTable]:
    try:
        reader = fastexcel.read_excel(content)
    except fastexcel.FastExcelError as error:
        raise FileRejected("corrupt_workbook", reason=str(error)) from None

    hidden = []
    for name in reader.sheet_names:
        table, visible = _read_sheet(reader, name, content, format)
        if visible:
            yield table
        else:
            hidden.append(table)
    yield from hidden


def _read_sheet(
    reader: fastexcel.ExcelReader, name: str, content: bytes, format: str
) -> tuple[RawTable, bool]:
    """Read one sheet as text and return it with whether the sheet is visible."""
    try:
        sheet = reader.load_sheet(
            name,
            header_row=None,
            skip_rows=0,
            dtypes="string",
            whitespace_as_null=True,
        )
        cells = sheet.to_polars()
    except fastexcel.FastExcelError as error:
        raise FileRejected("corrupt_workbook", reason=str(error)) from None

    cells.columns = [f"c{index}" for index in range(cells.width)]
    table = RawTable(
        format=format,
        cells=_dates_at_midnight_as_iso(cells),
        rows=pl.int_range(1, cells.height + 1, eager=True, dtype=pl.Int64),
        sheet=name,
        workbook=content,
    )
    return table, sheet.visible == "visible"


def _dates_at_midnight_as_iso(cells: pl.DataFrame) -> pl.DataFrame:
    """Write date cells as 2024-11-10 rather than calamine's 2024-11-10 00:00:00."""
    with_dates = [
        name
        for name in cells.columns
        if cells.get_column(name).str.ends_with(MIDNIGHT).any()
    ]
    return cells.with_columns(
        pl.when(pl.col(name).str.contains(EXCEL_DATETIME_TEXT))
        .then(pl.col(name).str.strip_suffix(MIDNIGHT))
        .otherwise(pl.col(name))
        .alias(name)
        for name in with_dates
    )
