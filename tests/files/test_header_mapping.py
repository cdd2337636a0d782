"""Header normalisation, synonyms, header-row detection and the detected mapping."""

import polars as pl
import pytest

from services.files import headers
from services.files.headers import (
    field_for_header,
    find_header_row,
    map_headers,
    normalise_header,
    read_header,
)


@pytest.mark.parametrize(
    "variants",
    [
        (
            "逾期本金（元）",
            "逾期本金(元)",
            " 逾期本金 ",
            "逾期本金【元】",
            "逾期本金/元",
        ),
        ("Acct #", "acct no.", "ACCT_NO", "Acct No"),
        ("Balance Due ($)", "balance due", "Balance  Due"),
        ("逾期天数(天)", "逾期天数", "逾期 天数"),
        ("欠款总额(¥)", "欠款总额（￥）", "欠款总额(%)"),
    ],
)
def test_normalise_header_variants_share_key(variants):
    keys = {normalise_header(text) for text in variants}
    assert len(keys) == 1, keys


SYNONYMS = [
    ("案件编号", "case_no"),
    ("案件号", "case_no"),
    ("Acct #", "case_no"),
    ("Account Number", "case_no"),
    ("客户姓名", "name"),
    ("Debtor Name", "name"),
    ("证件号码", "id_number"),
    ("联系电话", "phone"),
    ("State", "province"),
    ("所在省份", "province"),
    ("欠款总额(元)", "total_due"),
    ("应还总额", "total_due"),
    ("委案金额", "total_due"),
    ("Balance Due", "total_due"),
    ("Current Balance", "total_due"),
    ("逾期本金", "principal"),
    ("逾期天数", "dpd_at_placement"),
    ("DPD", "dpd_at_placement"),
    ("Days Past Due", "dpd_at_placement"),
    ("首次逾期日期", "overdue_since"),
    ("Delinquency Date", "overdue_since"),
    ("委案日期", "placement_date"),
    ("退案日期", "recall_date"),
    ("备注", "note"),
    ("催收备注", "note"),
    ("Collector Notes", "note"),
    ("Remarks", "note"),
    ("Comments", "note"),
    ("合同编号", "contract_no"),
    ("Contract No.", "contract_no"),
    ("客户类型", "customer_type"),
    ("联系人电话", "contact_phone"),
]


@pytest.mark.parametrize(("header", "field"), SYNONYMS)
def test_synonym_maps_to_field(header, field):
    assert field_for_header(header) == field


@pytest.mark.parametrize(
    "header",
    [
        "核销日期",
        "Charge-off Date",
        "Charged Off",
        "Last Payment Date",
        "Last Payment Amt",
        "最后还款日期",
        "客户经理",
        "Original Creditor",
    ],
)
def test_header_without_field(header):
    assert field_for_header(header) is None


def test_synonym_keys_name_one_field():
    owners: dict[str, str] = {}
    for field, words in headers.SYNONYMS.items():
        assert field in headers.FIELDS
        for word in words:
            key = normalise_header(word)
            assert owners.setdefault(key, field) == field, word


def test_contract_number_becomes_case_number_alone():
    mapping = map_headers(["合同号", "欠款总额", "逾期天数"])
    assert mapping["合同号"] == "case_no"


def test_contract_number_stays_beside_case_number():
    mapping = map_headers(["案件编号", "合同编号", "欠款总额"])
    assert mapping["案件编号"] == "case_no"
    assert mapping["合同编号"] == "contract_no"


def test_second_header_for_same_field_goes_to_extra():
    mapping = map_headers(["案件编号", "手机号", "联系电话", "欠款总额"])
    assert mapping["手机号"] == "phone"
    assert mapping["联系电话"] is None


def grid(rows: list[list[str | None]]) -> pl.DataFrame:
    width = max(len(row) for row in rows)
    padded = [row + [None] * (width - len(row)) for row in rows]
    return pl.DataFrame(
        {f"c{index}": [row[index] for row in padded] for index in range(width)},
        schema={f"c{index}": pl.Utf8 for index in range(width)},
    )


def test_header_found_below_title_rows():
    cells = grid(
        [
            ["某银行2024年11月委外催收案件清单", None, None],
            [None, None, None],
            ["制表日期:2024-11-15", None, None],
            ["案件编号", "客户姓名", "欠款总额"],
            ["C1", "张三", "100"],
        ]
    )
    assert find_header_row(cells) == 3


def test_header_needs_case_number_or_amount():
    cells = grid([["客户姓名", "手机号", "省份"], ["张三", "13800138000", "广东"]])
    assert find_header_row(cells) is None


def test_notes_sheet_has_no_header():
    cells = grid([["本表金额单位为人民币元;逾期天数以首次逾期日期计算至委案日期。"]])
    assert find_header_row(cells) is None


def test_leading_serial_column_is_ignored():
    cells = grid([["序号", "案件号", "应还总额"], ["1", "C1", "100"]])
    layout = read_header(cells, 0)
    assert layout.serial_column == 0
    assert layout.mapping["序号"] is None


@pytest.mark.parametrize("serial", ["No.", "#", "S/N", "序号"])
def test_serial_words(serial):
    cells = grid([[serial, "Acct #", "Balance Due"], ["1", "A1", "5"]])
    assert read_header(cells, 0).serial_column == 0


def test_repeated_header_gets_number():
    cells = grid([["案件编号", "备注", "备注", "欠款总额"], ["C1", "a", "b", "1"]])
    layout = read_header(cells, 0)
    assert layout.headers == ["案件编号", "备注", "备注 (2)", "欠款总额"]
    assert layout.mapping["备注"] == "note"
    assert layout.mapping["备注 (2)"] is None


def test_column_without_header_keeps_its_letter():
    cells = grid([["案件编号", "欠款总额", None, None], ["C1", "1", "kept", None]])
    layout = read_header(cells, 0)
    assert layout.headers == ["案件编号", "欠款总额", "[C]"]
    assert layout.columns == [0, 1, 2]


def test_column_letters():
    assert [headers.column_letter(i) for i in (0, 25, 26, 27, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
    ]
