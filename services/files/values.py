"""Read amounts, dates, phones, ID numbers and codes from columns of text.

Each reader takes a Utf8 Series and returns Series of the same length, computed with
polars expressions and no Python loop per row. Most readers first try the common
clean form on the whole column (a plain number, an ISO date, an 11-digit mobile).
The full reader then runs only on the rows that did not match, so a clean column
costs a few vectorised passes.

A reader returns null for an empty cell and for text it cannot read. `unread` marks
the second kind.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import polars as pl

MONEY = pl.Decimal(14, 2)
# Wide enough for 12 integer digits times 亿 (10^8) plus rounding digits.
MONEY_WORK = pl.Decimal(38, 8)

HALF_WIDTH = {
    **{chr(0xFF10 + digit): str(digit) for digit in range(10)},
    "．": ".",
    "，": ",",
    "－": "-",
    "−": "-",
    "＋": "+",
    "（": "(",
    "）": ")",
    "＄": "$",
    "／": "/",
    "：": ":",
    "　": " ",
}
FULL_WIDTH_CHARACTERS = "[" + "".join(HALF_WIDTH) + "]"

_AMOUNT_BODY = (
    r"[-+]?(?:rmb|cny|usd|us\$|\$|¥|￥)?[-+]?"
    r"(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+)"
    r"(?:万元|万|亿元|亿|元|rmb|cny|usd)?"
)
# The shape of a written amount, in brackets or not. It has no capture groups, so
# polars checks it with a fast automaton.
AMOUNT_SHAPE = rf"(?i)^(?:\({_AMOUNT_BODY}\)|{_AMOUNT_BODY})$"
# Characters around the number once the shape is known to be right.
AMOUNT_MARKS = "()+-$¥￥元万亿RMBCNYUSDrmbcnyusd"

DATE_TIME_TAIL = r"(?:[ T].*)?$"
YEAR_FIRST = (
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?" + DATE_TIME_TAIL
)
COMPACT = r"^(\d{4})(\d{2})(\d{2})" + DATE_TIME_TAIL
YEAR_LAST = r"^(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{4}|\d{2})" + DATE_TIME_TAIL
SERIAL = r"^(\d{4,6})(?:\.\d+)?$"
# Excel serial day 1 is 1900-01-01 but Excel counts a 29 February 1900 that never
# was, so from day 61 on the serial counts from 1899-12-30.
EXCEL_EPOCH = date(1899, 12, 30)
# Serials outside 1927-05-18 .. 2199-12-31 are read as unreadable, not as dates.
SERIAL_MIN, SERIAL_MAX = 10_000, 109_574

CN_MOBILE = r"1[3-9]\d{9}"
CN_LANDLINE = r"0\d{9,11}"
NANP = r"1?[2-9]\d{9}"
VALID_PHONE = rf"^(?:{CN_MOBILE}|{CN_LANDLINE}|{NANP})$"
CHINA_PREFIX = r"^\s*\(?(?:\+|00)\s*86"

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_18 = r"^\d{17}[\dX]$"

CUSTOMER_TYPES = {
    **dict.fromkeys(
        ("个人", "自然人", "个人客户", "对私", "individual", "personal", "person"),
        "individual",
    ),
    **dict.fromkeys(
        (
            "企业", "公司", "对公", "企业客户", "单位", "法人", "company", "business",
            "corporate", "corporation", "commercial",
        ),
        "company",
    ),
}  # fmt: skip

PROVINCE_SUFFIX = r"(?:省|市|特别行政区|壮族自治区|回族自治区|维吾尔自治区|自治区)$"


def has_text(text: pl.Series) -> pl.Series:
    """True where a cell contains something other than whitespace."""
    return text.str.contains(r"\S").fill_null(False)


def clean_text(text: pl.Series) -> pl.Series:
    """Strip surrounding whitespace, and turn empty results into null."""
    if not text.str.contains(r"^\s|\s$").any():
        return text
    stripped = text.str.strip_chars()
    return _evaluate(stripped, pl.when(_it() != "").then(_it()))


def half_width(text: pl.Series) -> pl.Series:
    """Replace full-width digits and signs with ASCII ones (１２３．４ -> 123.4)."""
    if not text.str.contains(FULL_WIDTH_CHARACTERS).any():
        return text
    return text.str.replace_many(list(HALF_WIDTH), list(HALF_WIDTH.values()))


def parse_amount(text: pl.Series) -> pl.Series:
    """Read money as Decimal(14, 2); null where empty or unreadable.

    Accepts ￥12,345.60, ¥12,345.60, 12345.6元, full-width digits, 1.2万 (12000),
    1.5亿, $1,234.50, (25.00) for -25 and -13412.53. Thousands separators must group
    by three, so "2946,95" (a decimal comma) is unreadable rather than 294695.
    Values with more than two decimals are rounded half away from zero, and values
    of a trillion or more are unreadable because they do not fit NUMERIC(14, 2).
    """
    return _fast_then_slow(text, _plain_amount, _written_amount)


def _plain_amount(text: pl.Series) -> pl.Series:
    # polars' Decimal cast reads only number forms such as -12.5, +5, .5 and 1e3,
    # and gives null for anything else, which then goes to `_written_amount`.
    if not text.str.contains(r"\.\d{3}").any():
        return text.cast(MONEY, strict=False)
    return _to_money(text.cast(MONEY_WORK, strict=False))


def _written_amount(text: pl.Series) -> pl.Series:
    compact = half_width(text)
    if compact.str.contains(r"\s").any():
        compact = compact.str.replace_all(r"\s+", "")

    frame = pl.DataFrame({"text": compact}).with_columns(
        valid=pl.col("text").str.contains(AMOUNT_SHAPE),
        negative=pl.col("text").str.starts_with("(")
        | pl.col("text").str.contains("-", literal=True),
        factor=pl.when(pl.col("text").str.contains("亿", literal=True))
        .then(pl.lit(100_000_000, dtype=pl.Int64))
        .when(pl.col("text").str.contains("万", literal=True))
        .then(10_000)
        .otherwise(1),
        number=pl.col("text")
        .str.strip_chars(AMOUNT_MARKS)
        .str.replace_all(",", "", literal=True)
        .cast(MONEY_WORK, strict=False),
    )
    magnitude = pl.col("number") * pl.col("factor").cast(pl.Decimal(38, 0))
    signed = frame.select(
        pl.when(pl.col("valid")).then(
            pl.when(pl.col("negative")).then(-magnitude).otherwise(magnitude)
        )
    ).to_series()
    return _to_money(signed)


def _to_money(number: pl.Series) -> pl.Series:
    rounded = number.round(2, mode="half_away_from_zero")
    return rounded.cast(MONEY, strict=False)


def parse_dpd(text: pl.Series) -> pl.Series:
    """Read days past due as Int32 (120, 120天, １２０, 120 days, 120.0)."""

    def written(pending: pl.Series) -> pl.Series:
        compact = half_width(pending).str.replace_all(r"[\s,]", "")
        digits = compact.str.extract(r"(?i)^(\d+)(?:\.0*)?(?:天|日|days?|d)?$", 1)
        return digits.cast(pl.Int32, strict=False)

    def plain(column: pl.Series) -> pl.Series:
        number = column.cast(pl.Int32, strict=False)
        return _evaluate(number, pl.when(_it() >= 0).then(_it()))

    return _fast_then_slow(text, plain, written)


@dataclass(frozen=True)
class DateColumn:
    """A date column split into dates read at once and the other values' parts.

    `iso` contains the dates in a year-first form (null elsewhere), and `pending` the
    positions of the other non-empty cells. `parts` has one row per pending cell:
    year, month and day of year-first forms, `first`, `second` and `last_year` of
    year-last forms (03/05/2024), and `serial` for Excel serial numbers.
    """

    iso: pl.Series
    pending: pl.Series
    parts: pl.DataFrame


def split_dates(text: pl.Series) -> DateColumn:
    """Read the dates that need no column-level decision and split up the rest."""
    iso = _fast_then_slow(text, _year_first_date, _excel_datetime)
    pending = unread(text, iso).arg_true()
    compact = half_width(text.gather(pending)).str.strip_chars()
    return DateColumn(iso=iso, pending=pending, parts=_date_parts(compact))


def _year_first_date(text: pl.Series) -> pl.Series:
    """Read the year-first forms that need no column-level decision.

    chrono's %Y also reads "11" as the year 11, so only text that starts with four
    digits is tried.
    """
    four_digit_year = text.str.contains(r"^\d{4}\D")
    candidates = _evaluate(text, pl.when(four_digit_year).then(_it()))
    value = candidates.str.to_date("%Y-%m-%d", strict=False)
    for format in ("%Y/%m/%d", "%Y年%m月%d日"):
        value = _fill_unread(candidates, value, _date_reader(format))
    return value


def _date_reader(format: str) -> Callable[[pl.Series], pl.Series]:
    return lambda text: text.str.to_date(format, strict=False)


def _excel_datetime(text: pl.Series) -> pl.Series:
    """Read calamine's text for a date cell, such as 2024-11-10 00:00:00."""
    calamine_text = text.str.contains(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
    candidates = _evaluate(text, pl.when(calamine_text).then(_it()))
    moment = candidates.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False)
    return moment.dt.date()


def _date_parts(text: pl.Series) -> pl.DataFrame:
    frame = pl.DataFrame({"text": text})
    frame = frame.with_columns(
        year_first=pl.col("text").str.extract_groups(YEAR_FIRST),
        packed=pl.col("text").str.extract_groups(COMPACT),
        year_last=pl.col("text").str.extract_groups(YEAR_LAST),
        serial=pl.col("text").str.extract(SERIAL, 1).cast(pl.Int64, strict=False),
    )
    last_year = pl.col("year_last").struct.field("3").cast(pl.Int32, strict=False)
    return frame.select(
        year=pl.coalesce(
            pl.col("year_first").struct.field("1"), pl.col("packed").struct.field("1")
        ).cast(pl.Int32),
        month=pl.coalesce(
            pl.col("year_first").struct.field("2"), pl.col("packed").struct.field("2")
        ).cast(pl.Int32),
        day=pl.coalesce(
            pl.col("year_first").struct.field("3"), pl.col("packed").struct.field("3")
        ).cast(pl.Int32),
        last_year=pl.when(last_year < 100).then(last_year + 2000).otherwise(last_year),
        first=pl.col("year_last").struct.field("1").cast(pl.Int32),
        second=pl.col("year_last").struct.field("2").cast(pl.Int32),
        serial=pl.col("serial"),
    )


def year_last_evidence(dates: DateColumn) -> tuple[bool, bool, bool]:
    """Return (day_first, month_first, ambiguous) for the column's year-last dates.

    25/03/2024 can only be day-first and 03/25/2024 only month-first; 03/05/2024
    could be either, while 05/05/2024 reads the same both ways.
    """
    first, second = pl.col("first"), pl.col("second")
    flags = dates.parts.select(
        ((first > 12) & (second <= 12)).any().alias("day_first"),
        ((second > 12) & (first <= 12)).any().alias("month_first"),
        _two_way(first, second).any().alias("ambiguous"),
    )
    day_first, month_first, ambiguous = flags.row(0)
    return bool(day_first), bool(month_first), bool(ambiguous)


def _two_way(first: pl.Expr, second: pl.Expr) -> pl.Expr:
    return (first <= 12) & (second <= 12) & (first != second)


def parse_dates(dates: DateColumn, order: str | None) -> tuple[pl.Series, pl.Series]:
    """Return the dates and an "ambiguous" flag per row.

    `order` is "dmy" or "mdy" for the column's year-last dates. With no order, a
    year-last value is read only when it can be read one way: 05/05/2024, 25/03/2024
    or 03/25/2024. The flag marks values such as 03/05/2024 left unread for that
    reason. Values that match no form stay null with the flag false.
    """
    first, second = pl.col("first"), pl.col("second")
    if order == "dmy":
        day, month = first, second
    elif order == "mdy":
        day, month = second, first
    else:
        one_way_day_first = (first == second) | (first > 12)
        day = pl.when(one_way_day_first).then(first).when(second > 12).then(second)
        month = pl.when(one_way_day_first).then(second).when(second > 12).then(first)

    parsed = dates.parts.select(
        value=pl.coalesce(
            _iso_date(pl.col("year"), pl.col("month"), pl.col("day")),
            _iso_date(pl.col("last_year"), month, day),
            _serial_date(pl.col("serial")),
        ),
        ambiguous=(_two_way(first, second) & pl.lit(order is None)).fill_null(False),
    )
    ambiguous = pl.repeat(False, len(dates.iso), dtype=pl.Boolean, eager=True)
    return (
        dates.iso.scatter(dates.pending, parsed.get_column("value")),
        ambiguous.scatter(dates.pending, parsed.get_column("ambiguous")),
    )


def _iso_date(year: pl.Expr, month: pl.Expr, day: pl.Expr) -> pl.Expr:
    text = pl.concat_str(
        year.cast(pl.Utf8).str.zfill(4),
        month.cast(pl.Utf8).str.zfill(2),
        day.cast(pl.Utf8).str.zfill(2),
        separator="-",
    )
    return text.str.to_date("%Y-%m-%d", strict=False)


def _serial_date(serial: pl.Expr) -> pl.Expr:
    in_range = (serial >= SERIAL_MIN) & (serial <= SERIAL_MAX)
    return pl.when(in_range).then(pl.lit(EXCEL_EPOCH) + pl.duration(days=serial))


def normalise_phone(text: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Reduce phones to digits and return them with a "valid" flag.

    +86 150 3095 7704 -> 15030957704, (295) 779-5238 -> 2957795238, and a number
    cell 13545322600.0 -> 13545322600. A Chinese number written with +86 or 0086
    loses the country code, and a landline gets back its leading 0. So does a
    mobile written as 86 and eleven digits (8615030957704). Valid numbers
    are Chinese mobiles (1[3-9] and nine digits), Chinese landlines (0 and 9 to 11
    digits) and North American numbers (ten digits from 2-9, optionally after a 1).
    """
    # NOTE: a cell with two numbers (13800138000/13900139000) becomes one long digit
    # string that is flagged invalid; the numbers are not split apart.
    digits = _fast_then_slow(text, _plain_mobile, _written_phone)
    return digits, digits.str.contains(VALID_PHONE).fill_null(False)


def _plain_mobile(text: pl.Series) -> pl.Series:
    mobile = text.str.contains(rf"^{CN_MOBILE}$")
    return _evaluate(text, pl.when(mobile).then(_it()))


def _written_phone(text: pl.Series) -> pl.Series:
    compact = half_width(text)
    if compact.str.contains(r"\.0+\s*$").any():
        compact = compact.str.replace(r"^\s*(\d+)\.0+\s*$", "${1}")

    frame = pl.DataFrame({"text": compact}).with_columns(
        international=pl.col("text").str.contains(CHINA_PREFIX),
        digits=pl.col("text").str.replace_all(r"\D", ""),
    )
    frame = frame.with_columns(national=pl.col("digits").str.replace(r"^(?:00)?86", ""))
    national = pl.col("national")
    return frame.select(
        pl.when(pl.col("digits") == "")
        .then(None)
        .when(pl.col("digits").str.contains(rf"^86{CN_MOBILE}$"))
        .then(pl.col("digits").str.slice(2))
        .when(~pl.col("international"))
        .then(pl.col("digits"))
        .when(national.str.contains(r"^(?:1[3-9]|0)"))
        .then(national)
        .otherwise(pl.lit("0") + national)
    ).to_series()


def check_id_numbers(
    text: pl.Series, number_cell: pl.Series | None = None
) -> tuple[pl.Series, pl.Series]:
    """Tidy ID numbers and return them with a status per row.

    The value loses inner spaces and gets an upper-case X. Status is "ok",
    "lost_digits", "checksum" or "invalid" (null for an empty cell). "lost_digits"
    marks an ID that went through a number, because Excel keeps only 15 significant
    digits. Signs of that are a number cell (`number_cell`) with more than 15
    digits, scientific notation (3.10115E+17), a decimal point, and 18 digits
    ending in 000 that fail the check digit. Eighteen-character IDs are checked
    against the GB 11643 check digit, and 15-digit IDs from before 1999 have none.
    """
    value = _tidy_id(text)
    frame = pl.DataFrame({"value": value}).with_columns(
        number_cell=pl.lit(False) if number_cell is None else number_cell,
        written_as_number=_written_as_number(value),
        well_formed=pl.col("value").str.contains(ID_18).fill_null(False),
        old_form=pl.col("value").str.contains(r"^\d{15}$").fill_null(False),
        body=pl.col("value").str.slice(0, 17).cast(pl.Int64, strict=False),
        last=pl.col("value").str.slice(17, 1),
    )
    frame = frame.with_columns(checksum_ok=pl.col("well_formed") & _check_digit_ok())

    excel_zeros = pl.col("value").str.ends_with("000") & ~pl.col("checksum_ok")
    # Excel keeps 15 significant digits, so a 15-digit ID survives a number cell.
    long_number = pl.col("number_cell").fill_null(False) & (
        pl.col("value").str.len_chars() > 15
    )
    through_number = (
        long_number
        | pl.col("written_as_number")
        | (pl.col("well_formed") & excel_zeros)
    )
    status = (
        pl.when(pl.col("value").is_null())
        .then(None)
        .when(through_number)
        .then(pl.lit("lost_digits"))
        .when(pl.col("old_form"))
        .then(pl.lit("ok"))
        .when(~pl.col("well_formed"))
        .then(pl.lit("invalid"))
        .when(pl.col("checksum_ok"))
        .then(pl.lit("ok"))
        .otherwise(pl.lit("checksum"))
    )
    return value, frame.select(status).to_series()


def _tidy_id(text: pl.Series) -> pl.Series:
    value = half_width(text)
    if value.str.contains(r"\s").any():
        value = value.str.replace_all(r"\s+", "")
        value = _evaluate(value, pl.when(_it() != "").then(_it()))
    if value.str.contains("x", literal=True).any():
        value = value.str.to_uppercase()
    return value


def _written_as_number(value: pl.Series) -> pl.Series:
    """True for 3.10115E+17 and 440106197501314624.0: an ID printed from a number."""
    if not value.str.contains(r"[.E]").any():
        return pl.repeat(False, len(value), dtype=pl.Boolean, eager=True)
    scientific = value.str.contains(r"^\d+(?:\.\d+)?E[-+]?\d+$")
    decimal = value.str.contains(r"^\d+\.\d*$")
    return (scientific | decimal).fill_null(False)


def _check_digit_ok() -> pl.Expr:
    """Compare the 18th character with the GB 11643 (ISO 7064 MOD 11-2) check digit.

    `body` contains the first 17 digits as one integer, split with integer arithmetic,
    which is much faster in polars than 17 one-character string slices.
    """
    total = pl.sum_horizontal(
        pl.col("body") // 10 ** (16 - position) % 10 * weight
        for position, weight in enumerate(ID_WEIGHTS)
    )
    expected = (12 - total % 11) % 11
    last = pl.col("last")
    actual = pl.when(last == "X").then(10).otherwise(last.cast(pl.Int64, strict=False))
    return (actual == expected).fill_null(False)


def parse_customer_type(text: pl.Series) -> pl.Series:
    """Map 个人/自然人/individual to "individual" and 企业/公司/对公 to "company"."""

    def exact(column: pl.Series) -> pl.Series:
        return column.replace_strict(CUSTOMER_TYPES, default=None, return_dtype=pl.Utf8)

    def written(pending: pl.Series) -> pl.Series:
        return exact(half_width(pending).str.strip_chars().str.to_lowercase())

    return _fast_then_slow(text, exact, written)


def short_province(text: pl.Series) -> pl.Series:
    """Shorten Chinese province names (广东省 -> 广东, 广西壮族自治区 -> 广西).

    Two-letter codes such as US states are upper-cased. Other text is kept.
    """
    value = clean_text(text)
    two_letters = value.str.contains(r"^[A-Za-z]{2}$")
    return _evaluate(
        value,
        pl.when(two_letters)
        .then(_it().str.to_uppercase())
        .otherwise(_it().str.replace(PROVINCE_SUFFIX, "")),
    )


def _fast_then_slow(
    text: pl.Series,
    fast: Callable[[pl.Series], pl.Series],
    slow: Callable[[pl.Series], pl.Series],
) -> pl.Series:
    """Read the column with `fast`, then read with `slow` only the rows it left null."""
    return _fill_unread(text, fast(text), slow)


def _fill_unread(
    text: pl.Series, value: pl.Series, reader: Callable[[pl.Series], pl.Series]
) -> pl.Series:
    """Fill `value` where it is null but `text` is not, reading only those rows."""
    pending = unread(text, value).arg_true()
    if pending.len() == 0:
        return value
    return value.scatter(pending, reader(text.gather(pending)))


def unread(text: pl.Series, value: pl.Series) -> pl.Series:
    """True where a cell has text but its value is null."""
    candidates = value.is_null() & text.is_not_null()
    if not candidates.any():
        return candidates
    return candidates & has_text(text)


def _it() -> pl.Expr:
    return pl.col("it")


def _evaluate(series: pl.Series, expression: pl.Expr) -> pl.Series:
    """Evaluate an expression over a Series, which the expression calls `it`."""
    frame = pl.DataFrame({"it": series})
    return frame.select(expression.alias(series.name)).to_series()
