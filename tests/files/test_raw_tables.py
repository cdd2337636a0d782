"""Raw grids: every cell as text, with the row numbers Excel shows."""

from pathlib import Path

from services.files.tables import read_tables

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def workbook_sheets():
    content = (FIXTURES / "cases_zh.xlsx").read_bytes()
    return list(read_tables(content, "xlsx"))


def test_workbook_sheets_in_order():
    assert [table.sheet for table in workbook_sheets()] == ["委案明细", "说明"]


def test_workbook_rows_match_spreadsheet_rows():
    table = workbook_sheets()[0]
    assert table.rows[0] == 1
    assert table.cells.row(0)[0].startswith("某银行")
    assert table.cells.row(1)[0] == "序号"
    assert table.cells.row(2)[1] == "XL2411000001"


def test_workbook_date_cells_read_as_iso_dates():
    table = workbook_sheets()[0]
    assert table.cells.row(2)[11] == "2024-11-10"
    assert table.cells.row(10)[11] == "2024年10月1日"


def test_workbook_number_cells_without_decimal_zero():
    table = workbook_sheets()[0]
    phone_row = table.cells.row(8)
    assert phone_row[1] == "XL2411000007"
    assert phone_row[4] == "13545322600"


def test_workbook_cell_kinds():
    table = workbook_sheets()[0]
    kinds = table.cell_kinds([3, 4, 11]).rows()
    assert kinds[1] == ("text", "text", "text")
    assert kinds[6] == ("number", "text", "date")
    assert kinds[8] == ("text", "number", "date")
    assert kinds[10][2] == "text"


def test_csv_rows_count_records():
    content = b'a,b\n1,"x\ny"\n\n2,z\n'
    [table] = read_tables(content, "text")
    assert table.rows.to_list() == [1, 2, 3, 4]
    assert table.cells.row(1) == ("1", "x\ny")
    assert table.cells.row(2) == (None, None)
    assert table.cells.row(3) == ("2", "z")


def test_csv_ragged_records_kept_whole():
    content = b"title\na,b,c\n1,2,3,4\n"
    [table] = read_tables(content, "text")
    assert table.cells.width == 4
    assert table.cells.row(2) == ("1", "2", "3", "4")
