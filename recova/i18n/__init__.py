"""Message catalogs for zh-CN and English, and locale-aware number and date formats."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_date
from babel.dates import format_datetime as babel_datetime
from babel.numbers import format_currency, format_decimal

from recova.i18n import (
    en,
    en_followup,
    en_kpi,
    en_score,
    zh_cn,
    zh_cn_followup,
    zh_cn_kpi,
    zh_cn_score,
)

# Each feature keeps its messages in its own module; a key defined twice is a bug.
EN = {**en.MESSAGES, **en_followup.MESSAGES, **en_kpi.MESSAGES, **en_score.MESSAGES}
ZH = {
    **zh_cn.MESSAGES,
    **zh_cn_followup.MESSAGES,
    **zh_cn_kpi.MESSAGES,
    **zh_cn_score.MESSAGES,
}

LANGUAGES = {"zh-CN": "中文", "en": "English"}
CATALOGS = {"zh-CN": ZH, "en": EN}
BABEL_LOCALES = {"zh-CN": "zh_Hans_CN", "en": "en_US"}


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def translate(key: str, language: str = "zh-CN", /, **params: Any) -> str:
    """Return the message `key` in `language`, with `params` filled in.

    An unknown key falls back to English, then to the key itself, so a missing
    translation shows up on screen instead of raising.
    """
    catalog = CATALOGS.get(language, EN)
    template = catalog.get(key) or EN.get(key) or key
    if not params:
        return template
    return template.format_map(_Missing(params))


def make_translator(language: str):
    def t(key: str, /, **params: Any) -> str:
        return translate(key, language, **params)

    return t


def format_money(amount: Decimal | None, language: str, currency: str = "CNY") -> str:
    if amount is None:
        return ""
    return format_currency(amount, currency, locale=BABEL_LOCALES[language])


def format_number(value: Decimal | int | None, language: str, digits: int = 2) -> str:
    if value is None:
        return ""
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=BABEL_LOCALES[language])


def format_day(value: date | None, language: str) -> str:
    if value is None:
        return ""
    return babel_date(value, format="medium", locale=BABEL_LOCALES[language])


def format_moment(
    value: datetime | None, language: str, timezone: str, length: str = "medium"
) -> str:
    """Format a moment in `timezone`; `length` is Babel's short, medium or long."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(timezone))
    return babel_datetime(local, format=length, locale=BABEL_LOCALES[language])
