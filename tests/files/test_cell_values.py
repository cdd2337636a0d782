"""Readers for amounts, dates, phones, ID numbers, days past due and codes."""

from datetime import date
from decimal import Decimal

import polars as pl
import pytest

from services.files import values

AMOUNTS = [
    ("￥12,345.60", "12345.60"),
    ("¥12,345.60", "12345.60"),
    ("12345.6元", "12345.60"),
    ("１２３４５．６", "12345.60"),
    ("1.2万", "12000.00"),
    ("1.5亿", "150000000.00"),
    ("$1,234.50", "1234.50"),
    ("(25.00)", "-25.00"),
    ("($475.34)", "-475.34"),
    ("-13412.53", "-13412.53"),
    ("-$5", "-5.00"),
    ("USD 1,000", "1000.00"),
    ("1 234.00", "1234.00"),
    ("0", "0.00"),
    ("12.345", "12.35"),
    ("-12.345", "-12.35"),
    ("1e3", "1000.00"),
    ("999999999999.99", "999999999999.99"),
    ("2946,95", None),
    ("1,23,456", None),
    ("(25.00", None),
    ("abc", None),
    ("1000000000000", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "expected"), AMOUNTS)
def test_amount(text, expected):
    result = values.parse_amount(pl.Series([text], dtype=pl.Utf8))
    assert result.dtype == pl.Decimal(14, 2)
    assert result[0] == (None if expected is None else Decimal(expected))


def test_amount_column_mixes_fast_and_written_forms():
    texts = pl.Series(["100.5", "￥1,000", None, "2.5万", "bad"])
    result = values.parse_amount(texts).to_list()
    expected = ["100.50", "1000.00", None, "25000.00", None]
    assert result == [None if e is None else Decimal(e) for e in expected]


DATES = [
    ("2024-03-05", date(2024, 3, 5)),
    ("2024-3-5", date(2024, 3, 5)),
    ("2024/3/5", date(2024, 3, 5)),
    ("2024.3.5", date(2024, 3, 5)),
    ("2024年3月5日", date(2024, 3, 5)),
    ("２０２４年３月５日", date(2024, 3, 5)),
    ("20240305", date(2024, 3, 5)),
    ("2024-11-10 00:00:00", date(2024, 11, 10)),
    ("2024-11-10T08:30:00", date(2024, 11, 10)),
    ("45606", date(2024, 11, 10)),
    ("45606.5", date(2024, 11, 10)),
    ("03/25/2024", date(2024, 3, 25)),
    ("25/03/2024", date(2024, 3, 25)),
    ("05/05/2024", date(2024, 5, 5)),
    ("2024-02-30", None),
    ("120", None),
    ("hello", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "expected"), DATES)
def test_date_alone_in_column(text, expected):
    dates = values.split_dates(pl.Series([text], dtype=pl.Utf8))
    result, ambiguous = values.parse_dates(dates, None)
    assert result[0] == expected
    assert ambiguous[0] is False


def read_column(texts: list[str | None], order: str | None = None):
    dates = values.split_dates(pl.Series(texts, dtype=pl.Utf8))
    evidence = values.year_last_evidence(dates)
    result, ambiguous = values.parse_dates(dates, order)
    return evidence, result.to_list(), ambiguous.to_list()


def test_month_first_column_from_one_value():
    evidence, result, ambiguous = read_column(["03/05/2024", "03/25/2024"])
    assert evidence == (False, True, True)
    _, result, _ = read_column(["03/05/2024", "03/25/2024"], "mdy")
    assert result == [date(2024, 3, 5), date(2024, 3, 25)]


def test_day_first_column_from_one_value():
    evidence, _, _ = read_column(["25/03/2024", "05/04/2024"])
    assert evidence == (True, False, True)
    _, result, ambiguous = read_column(["25/03/2024", "05/04/2024"], "dmy")
    assert result == [date(2024, 3, 25), date(2024, 4, 5)]
    assert ambiguous == [False, False]


def test_ambiguous_column_left_unread():
    evidence, result, ambiguous = read_column(["03/05/2024", "04/06/2024", None])
    assert evidence == (False, False, True)
    assert result == [None, None, None]
    assert ambiguous == [True, True, False]


def test_two_digit_year_last():
    _, result, _ = read_column(["11/10/24"], "mdy")
    assert result == [date(2024, 11, 10)]


PHONES = [
    ("15030957704", "15030957704", True),
    ("+86 150 3095 7704", "15030957704", True),
    ("0086 13800138000", "13800138000", True),
    ("8615030957704", "15030957704", True),
    ("(295) 779-5238", "2957795238", True),
    ("1 (295) 779-5238", "12957795238", True),
    ("13545322600.0", "13545322600", True),
    ("１３８００１３８０００", "13800138000", True),
    ("010-8888 8888", "01088888888", True),
    ("+86 10 8888 8888", "01088888888", True),
    ("+86 010 8888 8888", "01088888888", True),
    ("1380013", "1380013", False),
    ("0123", "0123", False),
    ("N/A", None, False),
    (None, None, False),
]


@pytest.mark.parametrize(("text", "digits", "valid"), PHONES)
def test_phone(text, digits, valid):
    result, is_valid = values.normalise_phone(pl.Series([text], dtype=pl.Utf8))
    assert result[0] == digits
    assert is_valid[0] is valid


IDS = [
    ("11010519491231002X", "11010519491231002X", "ok"),
    ("11010519491231002x", "11010519491231002X", "ok"),
    ("110105 19491231 002X", "11010519491231002X", "ok"),
    ("110105194912310021", "110105194912310021", "checksum"),
    ("110105491231002", "110105491231002", "ok"),
    ("4.40106E+17", "4.40106E+17", "lost_digits"),
    ("440106197501314624.0", "440106197501314624.0", "lost_digits"),
    ("440106197501314000", "440106197501314000", "lost_digits"),
    ("1101051949", "1101051949", "invalid"),
    ("ABC", "ABC", "invalid"),
    (None, None, None),
]


@pytest.mark.parametrize(("text", "value", "status"), IDS)
def test_id_number(text, value, status):
    result, statuses = values.check_id_numbers(pl.Series([text], dtype=pl.Utf8))
    assert result[0] == value
    assert statuses[0] == status


def test_id_from_number_cell_lost_digits():
    texts = pl.Series(["440106197501314624", "440106197501314624", "110105491231002"])
    number_cell = pl.Series([True, False, True])
    _, statuses = values.check_id_numbers(texts, number_cell)
    assert statuses[0] == "lost_digits"
    assert statuses[1] != "lost_digits"
    assert statuses[2] == "ok"


DPD = [
    ("120", 120),
    ("120天", 120),
    ("１２０", 120),
    ("120 days", 120),
    ("120.0", 120),
    ("0", 0),
    ("-5", None),
    ("abc", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "expected"), DPD)
def test_dpd(text, expected):
    result = values.parse_dpd(pl.Series([text], dtype=pl.Utf8))
    assert result.dtype == pl.Int32
    assert result[0] == expected


CUSTOMER_TYPES = [
    ("个人", "individual"),
    ("自然人", "individual"),
    ("Individual", "individual"),
    (" personal ", "individual"),
    ("企业", "company"),
    ("公司", "company"),
    ("对公", "company"),
    ("Corporate", "company"),
    ("business", "company"),
    ("其他", None),
]


@pytest.mark.parametrize(("text", "expected"), CUSTOMER_TYPES)
def test_customer_type(text, expected):
    assert values.parse_customer_type(pl.Series([text]))[0] == expected


PROVINCES = [
    ("广东省", "广东"),
    ("北京市", "北京"),
    ("广西壮族自治区", "广西"),
    ("内蒙古自治区", "内蒙古"),
    ("新疆维吾尔自治区", "新疆"),
    ("宁夏回族自治区", "宁夏"),
    ("香港特别行政区", "香港"),
    ("广东", "广东"),
    ("ca", "CA"),
    ("OK", "OK"),
    (" 四川省 ", "四川"),
]


@pytest.mark.parametrize(("text", "expected"), PROVINCES)
def test_province(text, expected):
    assert values.short_province(pl.Series([text]))[0] == expected
