"""Message catalogs: both languages carry every message with the same placeholders."""

import re
import string
from decimal import Decimal
from pathlib import Path

import pytest

from recova.i18n import (
    EN,
    ZH,
    en,
    en_followup,
    en_kpi,
    en_score,
    format_money,
    translate,
)

ROOT = Path(__file__).resolve().parents[1]
KEY_USE = re.compile(r"""\bt\(\s*["']([a-z_][a-z0-9_.\-]+)["']""")


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_catalogs_have_same_keys():
    assert set(EN) - set(ZH) == set()
    assert set(ZH) - set(EN) == set()


def test_no_key_is_defined_in_two_modules():
    modules = [en, en_followup, en_kpi, en_score]
    total = sum(len(module.MESSAGES) for module in modules)
    assert total == len(EN)


@pytest.mark.parametrize("key", sorted(EN))
def test_placeholders_match(key):
    assert placeholders(EN[key]) == placeholders(ZH[key])


def test_literal_keys_in_code_exist():
    sources = [
        *ROOT.glob("pages/*.py"),
        ROOT / "app.py",
        *ROOT.glob("recova/*.py"),
        *ROOT.glob("recova/cli_*.py"),
    ]
    missing = {
        key
        for path in sources
        for key in KEY_USE.findall(path.read_text(encoding="utf-8"))
        if key not in EN and not key.endswith(".")
    }
    assert missing == set()


def test_unknown_key_shows_key():
    assert translate("no.such.key", "zh-CN") == "no.such.key"


def test_money_formats_per_language():
    assert format_money(Decimal("1234.5"), "en") == "CN¥1,234.50"
    assert format_money(Decimal("1234.5"), "zh-CN") == "¥1,234.50"
