"""Row rules, derivations, mapping overrides and awkward files in parse_cases."""

import io
import json
from datetime import date, datetime
from decimal import Decimal

import pytest
import xlsxwriter

from services.files import FileRejected
from services.files.intake import ParsedCases, parse_cases

TODAY = date(2024, 11, 15)


def csv_bytes(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def parse(lines: list[str], **options) -> ParsedCases:
    options.setdefault("today", TODAY)
    return parse_cases(csv_bytes(lines), "cases.csv", **options)


def codes(issues, row: int) -> set[str]:
    return {issue.code for issue in issues if issue.row == row}


def xlsx_bytes(sheets: dict[str, list[list]]) -> bytes:
    """Write rows with xlsxwriter, keeping each Python value's cell type."""
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer, {"in_memory": True}) as workbook:
        date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
        for name, rows in sheets.items():
            sheet = workbook.add_worksheet(name)
            for row_index, row in enumerate(rows):
                for column, value in enumerate(row):
                    if isinstance(value, (date, datetime)):
                        sheet.write_datetime(row_index, column, value, date_format)
                    elif isinstance(value, (int, float)):
                        sheet.write_number(row_index, column, value)
                    elif value is not None:
                        sheet.write_string(row_index, column, value)
    return buffer.getvalue()


def rejection(content: bytes, filename: str = "cases.csv") -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        parse_cases(content, filename, today=TODAY)
    return caught.value


# --- files that cannot be imported at all -----------------------------------------


def test_header_only_file():
    error = rejection(csv_bytes(["案件编号,欠款总额,逾期天数"]))
    assert error.code == "no_data_rows"


def test_header_and_blank_lines_only():
    error = rejection(csv_bytes(["案件编号,欠款总额,逾期天数", "", ",,", " , , "]))
    assert error.code == "no_data_rows"


def test_no_column_maps():
    error = rejection(csv_bytes(["foo,bar,baz", "1,2,3"]))
    assert error.code == "no_header"


def test_notes_only_workbook():
    content = xlsx_bytes({"说明": [["本表金额单位为人民币元。"], ["请勿修改表头。"]]})
    assert rejection(content, "cases.xlsx").code == "no_header"


def test_mapping_without_amount_is_no_header():
    lines = ["案件编号,欠款总额,逾期天数", "C1,100,30"]
    with pytest.raises(FileRejected) as caught:
        parse(lines, mapping={"欠款总额": None})
    assert caught.value.code == "no_header"
    assert caught.value.params["missing"] == ["total_due"]


# --- row numbers, blank and totals rows -------------------------------------------


def test_blank_and_totals_rows_are_ignored():
    parsed = parse(
        [
            "案件编号,客户姓名,欠款总额,逾期天数",
            "C1,张三,100,30",
            "",
            "C2,李四,200,30",
            "合计,,300,",
            "Total:,,300,",
        ]
    )
    assert parsed.data_rows == 2
    assert parsed.cases["row"].to_list() == [2, 4]
    assert parsed.rejected == []


def test_totals_word_beside_case_number_is_data():
    parsed = parse(["客户姓名,案件编号,欠款总额,逾期天数", "Total,T1,100,30"])
    assert parsed.cases["case_no"].to_list() == ["T1"]
    assert parsed.cases["name"].to_list() == ["Total"]


def test_quoted_line_break_one_row():
    parsed = parse(
        [
            "案件编号,客户姓名,欠款总额,逾期天数,备注",
            'C1,张三,100,30,"第一行',
            '第二行"',
            ",李四,100,30,",
        ]
    )
    assert parsed.cases["note"][0] == "第一行\n第二行"
    assert codes(parsed.rejected, 3) == {"case_no_missing"}


def test_title_line_above_csv_header():
    parsed = parse(
        [
            "某银行委外案件清单",
            "",
            "案件编号,客户姓名,欠款总额,逾期天数",
            "C1,张三,100,30",
        ]
    )
    assert parsed.header_row == 3
    assert parsed.cases["row"].to_list() == [4]


def test_case_number_kept_as_text():
    parsed = parse(["案件编号,客户姓名,欠款总额,逾期天数", "  00123 ,张三,100,30"])
    assert parsed.cases["case_no"][0] == "00123"


# --- required fields and derivations ----------------------------------------------


def test_overdue_date_from_dpd_and_batch_date():
    parsed = parse(
        ["案件编号,客户姓名,欠款总额,逾期天数", "C1,张三,100,30"],
        placement_date=date(2024, 11, 30),
    )
    assert parsed.cases["overdue_since"][0] == date(2024, 10, 31)


def test_dpd_from_overdue_date_and_today():
    parsed = parse(
        ["案件编号,客户姓名,欠款总额,首次逾期日期", "C1,张三,100,2024-11-05"]
    )
    assert parsed.cases["dpd_at_placement"][0] == 10


def test_row_placement_date_wins_over_batch_date():
    parsed = parse(
        [
            "案件编号,客户姓名,欠款总额,首次逾期日期,委案日期",
            "C1,张三,100,2024/10/1,2024/10/31",
        ],
        placement_date=date(2024, 12, 31),
    )
    assert parsed.cases["dpd_at_placement"][0] == 30
    assert parsed.placement_date == date(2024, 10, 31)


def test_dpd_and_overdue_date_both_kept_as_given():
    parsed = parse(
        ["案件编号,客户姓名,欠款总额,逾期天数,逾期日期", "C1,张三,100,99,2024-11-05"]
    )
    row = parsed.cases.row(0, named=True)
    assert row["dpd_at_placement"] == 99
    assert row["overdue_since"] == date(2024, 11, 5)


def test_overdue_date_after_placement_is_rejected():
    parsed = parse(["案件编号,客户姓名,欠款总额,逾期日期", "C1,张三,100,2024-12-01"])
    assert codes(parsed.rejected, 2) == {"overdue_after_placement"}


def test_total_due_from_principal_interest_and_fees():
    parsed = parse(
        [
            "案件编号,客户姓名,本金,利息,费用,逾期天数",
            "C1,张三,100.10,5.05,,30",
            "C2,李四,,5,1,30",
        ]
    )
    assert parsed.cases["total_due"].to_list() == [Decimal("105.15")]
    assert codes(parsed.rejected, 3) == {"total_due_missing"}


def test_blank_total_due_not_filled_from_principal():
    parsed = parse(["案件编号,客户姓名,本金,欠款总额,逾期天数", "C1,张三,100,,30"])
    assert codes(parsed.rejected, 2) == {"total_due_missing"}


def test_row_errors():
    parsed = parse(
        [
            "案件编号,客户姓名,欠款总额,逾期天数,逾期日期",
            "C1,张三,abc,30,",
            "C2,李四,0,30,",
            "C3,王五,100,,",
            "C4,赵六,100,,2024-13-45",
            "C5,钱七,100,三十,",
            "C1,孙八,100,30,",
        ]
    )
    assert codes(parsed.rejected, 2) == {"amount_unreadable"}
    assert codes(parsed.rejected, 3) == {"total_due_not_positive"}
    assert codes(parsed.rejected, 4) == {"overdue_missing"}
    assert codes(parsed.rejected, 5) == {"date_unreadable"}
    assert codes(parsed.rejected, 6) == {"dpd_unreadable"}
    assert codes(parsed.rejected, 7) == {"case_no_duplicate"}
    assert parsed.cases.height == 0


def test_issue_params_carry_message_values():
    parsed = parse(["案件编号,客户姓名,欠款总额,逾期天数", "C1,张三,abc,30"])
    issue = parsed.rejected[0]
    assert issue.column == "欠款总额"
    assert issue.field == "total_due"
    assert issue.value == "abc"
    assert issue.params == {"row": 2, "column": "欠款总额", "value": "abc"}


def test_warnings_on_imported_rows():
    parsed = parse(
        [
            "案件编号,客户姓名,身份证号,手机号,本金,利息,欠款总额,逾期天数,客户类型",
            "C1,,11010519491231002X,13800138000,100,5,105,30,个人",
            "C2,李四,110105194912310021,1380013,100,5,999,30,其他",
            "C3,王五,12345,13800138000,100,5,105,30,企业",
        ]
    )
    assert codes(parsed.warnings, 2) == {"name_missing"}
    assert codes(parsed.warnings, 3) == {
        "id_number_checksum",
        "phone_invalid",
        "total_due_mismatch",
        "customer_type_unknown",
    }
    assert codes(parsed.warnings, 4) == {"id_number_invalid"}
    assert parsed.cases.height == 3


def test_mismatch_params_give_both_sums():
    parsed = parse(
        ["案件编号,客户姓名,本金,利息,欠款总额,逾期天数", "C1,张三,100,5,999,30"]
    )
    issue = parsed.warnings[0]
    assert issue.code == "total_due_mismatch"
    assert Decimal(issue.params["expected"]) == Decimal("105")
    assert Decimal(issue.params["total_due"]) == Decimal("999")


def test_rejected_row_gets_no_warnings():
    parsed = parse(["案件编号,客户姓名,手机号,欠款总额,逾期天数", "C1,,123,,30"])
    assert codes(parsed.rejected, 2) == {"total_due_missing"}
    assert parsed.warnings == []


# --- date columns -----------------------------------------------------------------


def test_ambiguous_date_column_is_file_issue():
    lines = [
        "案件编号,客户姓名,欠款总额,逾期日期",
        "C1,张三,100,03/05/2024",
        "C2,李四,100,04/06/2024",
        "C3,王五,100,07/07/2024",
    ]
    parsed = parse(lines)
    [issue] = parsed.file_issues
    assert issue.code == "date_order_ambiguous"
    assert issue.column == "逾期日期"
    assert issue.params["examples"] == ["03/05/2024", "04/06/2024"]
    assert codes(parsed.rejected, 2) == {"date_order_ambiguous"}
    assert parsed.cases["case_no"].to_list() == ["C3"]

    resolved = parse(lines, date_orders={"逾期日期": "dmy"})
    assert resolved.file_issues == []
    assert resolved.cases["overdue_since"].to_list() == [
        date(2024, 5, 3),
        date(2024, 6, 4),
        date(2024, 7, 7),
    ]


def test_day_first_date_column():
    parsed = parse(
        [
            "案件编号,客户姓名,欠款总额,逾期日期",
            "C1,张三,100,25/03/2024",
            "C2,李四,100,05/04/2024",
        ]
    )
    assert parsed.file_issues == []
    assert parsed.cases["overdue_since"].to_list() == [
        date(2024, 3, 25),
        date(2024, 4, 5),
    ]


def test_conflicting_date_column():
    parsed = parse(
        [
            "案件编号,客户姓名,欠款总额,逾期日期",
            "C1,张三,100,25/03/2024",
            "C2,李四,100,03/25/2024",
            "C3,王五,100,03/05/2024",
        ]
    )
    assert [issue.code for issue in parsed.file_issues] == ["date_order_conflict"]
    assert parsed.cases["overdue_since"].to_list() == [date(2024, 3, 25)] * 2
    assert codes(parsed.rejected, 4) == {"date_order_ambiguous"}


def test_batch_dates_need_one_value():
    parsed = parse(
        [
            "案件编号,客户姓名,欠款总额,逾期天数,委案日期,退案日期",
            "C1,张三,100,30,2024-11-01,2025-02-01",
            "C2,李四,100,30,2024-11-02,2025-02-01",
        ]
    )
    assert parsed.placement_date is None
    assert parsed.recall_date == date(2025, 2, 1)


# --- mapping, extra columns ---------------------------------------------------------


def test_extra_json_keeps_unmapped_cells():
    parsed = parse(
        [
            '案件编号,客户姓名,欠款总额,逾期天数,客户经理,"Last ""Pay"" Date"',
            'C1,张三,100,30,许玉兰,"a ""quoted""\\ value"',
            "C2,李四,100,30,,",
        ]
    )
    assert parsed.extra_headers == ["客户经理", 'Last "Pay" Date']
    first, second = (json.loads(text) for text in parsed.cases["extra"])
    assert first == {"客户经理": "许玉兰", 'Last "Pay" Date': 'a "quoted"\\ value'}
    assert second == {}


def test_serial_column_not_in_extra():
    parsed = parse(["序号,案件编号,客户姓名,欠款总额,逾期天数", "1,C1,张三,100,30"])
    assert parsed.extra_headers == []
    assert json.loads(parsed.cases["extra"][0]) == {}


def test_mapping_override():
    lines = ["案件编号,客户姓名,欠款总额,逾期天数,客户经理", "C1,张三,100,30,许玉兰"]
    parsed = parse(lines, mapping={"客户经理": "note", "客户姓名": None})
    assert parsed.mapping["客户经理"] == "note"
    assert parsed.cases["note"][0] == "许玉兰"
    assert json.loads(parsed.cases["extra"][0]) == {"客户姓名": "张三"}


def test_mapping_override_takes_field_from_detected_column():
    lines = ["案件编号,合同编号,欠款总额,逾期天数", "C1,HT1,100,30"]
    parsed = parse(lines, mapping={"合同编号": "case_no"})
    assert parsed.mapping["案件编号"] is None
    assert parsed.cases["case_no"][0] == "HT1"


@pytest.mark.parametrize(
    "mapping",
    [{"客户姓名": "nickname"}, {"客户姓名": "case_no", "案件编号": "case_no"}],
)
def test_invalid_mapping_override(mapping):
    lines = ["案件编号,客户姓名,欠款总额,逾期天数", "C1,张三,100,30"]
    with pytest.raises(FileRejected) as caught:
        parse(lines, mapping=mapping)
    assert caught.value.code == "mapping_invalid"


def test_charge_off_date_goes_to_extra():
    parsed = parse(
        ["Acct #,Balance Due,Charge-off Date,DPD", "A1,$10.00,11/10/2024,35"]
    )
    assert parsed.mapping["Charge-off Date"] is None
    assert parsed.cases["overdue_since"][0] == date(2024, 10, 11)


# --- workbooks ----------------------------------------------------------------------


def test_workbook_numbers_in_phone_and_id_columns():
    content = xlsx_bytes(
        {
            "cases": [
                [
                    "案件编号",
                    "客户姓名",
                    "身份证号",
                    "手机号",
                    "欠款总额",
                    "首次逾期日期",
                ],
                [
                    "X1",
                    "张三",
                    440106197501314624,
                    13545322600,
                    100.5,
                    date(2024, 11, 10),
                ],
                ["X2", "李四", "11010519491231002X", "13800138000", 200, 45606],
                [
                    "X3",
                    "王五",
                    "11010519491231002X",
                    13800138000.0,
                    300,
                    "2024年11月1日",
                ],
            ]
        }
    )
    parsed = parse_cases(content, "cases.xlsx", today=TODAY)
    assert codes(parsed.rejected, 2) == {"id_number_lost_digits"}
    assert parsed.cases["phone"].to_list() == ["13800138000", "13800138000"]
    assert parsed.cases["overdue_since"].to_list() == [
        date(2024, 11, 10),
        date(2024, 11, 1),
    ]
    assert parsed.cases["total_due"].to_list() == [Decimal("200.00"), Decimal("300.00")]

    number_phone = parse_cases(
        content, "cases.xlsx", today=TODAY, mapping={"身份证号": None}
    )
    assert number_phone.cases["phone"][0] == "13545322600"
    assert number_phone.cases["total_due"][0] == Decimal("100.50")


def test_workbook_second_data_sheet_is_reported():
    sheet = [["案件编号", "欠款总额", "逾期天数"], ["C1", 100, 30]]
    content = xlsx_bytes({"说明": [["说明文字"]], "十一月": sheet, "十二月": sheet})
    parsed = parse_cases(content, "cases.xlsx", today=TODAY)
    assert parsed.sheet == "十一月"
    assert [issue.code for issue in parsed.file_issues] == ["sheet_not_imported"]
    assert parsed.file_issues[0].params["sheet"] == "十二月"


def test_workbook_rows_start_below_empty_rows():
    content = xlsx_bytes(
        {"cases": [[], [], ["案件编号", "欠款总额", "逾期天数"], [], ["C1", 100, 30]]}
    )
    parsed = parse_cases(content, "cases.xlsx", today=TODAY)
    assert parsed.header_row == 3
    assert parsed.cases["row"].to_list() == [5]
