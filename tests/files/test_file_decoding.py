"""Format sniffing, text decoding and delimiter detection."""

import io
import struct
import zipfile
import zlib
from datetime import date
from pathlib import Path

import pytest

from services.files import FileRejected
from services.files.decode import decode_text, detect_delimiter, sniff_format
from services.files.intake import parse_cases

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TODAY = date(2024, 11, 15)
ROWS = [
    ["案件编号", "客户姓名", "欠款总额", "逾期天数", "备注"],
    ["C001", "张三", "1,234.50", "30", "说过周五还"],
    ["C002", "李四", "200", "45", ""],
]


def table_text(delimiter: str, rows: list[list[str]] = ROWS) -> str:
    def quoted(value: str) -> str:
        needs_quotes = delimiter in value or '"' in value or "\n" in value
        return '"' + value.replace('"', '""') + '"' if needs_quotes else value

    return "".join(delimiter.join(map(quoted, row)) + "\r\n" for row in rows)


def png_bytes() -> bytes:
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + ihdr


def zip_bytes(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


def rejection(content: bytes, filename: str = "cases.csv") -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        parse_cases(content, filename, today=TODAY)
    return caught.value


def test_sniff_xlsx_fixture():
    assert sniff_format((FIXTURES / "cases_zh.xlsx").read_bytes()) == "xlsx"


def test_sniff_csv_named_xlsx_is_text():
    assert sniff_format(table_text(",").encode(), "cases.xlsx") == "text"


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (png_bytes(), "png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "pdf"),
        (zip_bytes(["readme.txt"]), "zip"),
        (zip_bytes(["word/document.xml"]), "docx"),
        (bytes(range(256)) * 20, "binary"),
    ],
)
def test_not_a_table(content, kind):
    error = rejection(content)
    assert error.code == "not_a_table"
    assert error.params["kind"] == kind


def test_png_renamed_csv_is_rejected():
    error = rejection(png_bytes(), "cases.csv")
    assert (error.code, error.params["kind"]) == ("not_a_table", "png")


@pytest.mark.parametrize("content", [b"", b" \r\n\n", b"\xef\xbb\xbf"])
def test_empty_file(content):
    assert rejection(content, "cases.csv").code == "file_empty"


def test_zero_byte_xlsx_is_corrupt():
    assert rejection(b"", "cases.xlsx").code == "corrupt_workbook"


def test_truncated_xlsx_is_corrupt():
    content = (FIXTURES / "cases_zh.xlsx").read_bytes()[:2000]
    assert rejection(content, "cases.xlsx").code == "corrupt_workbook"


def test_encrypted_xlsx():
    msoffcrypto = pytest.importorskip("msoffcrypto")
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = io.BytesIO((FIXTURES / "cases_zh.xlsx").read_bytes())
    encrypted = io.BytesIO()
    OOXMLFile(plain).encrypt("secret", encrypted)
    assert msoffcrypto.OfficeFile(io.BytesIO(encrypted.getvalue())).is_encrypted()
    assert rejection(encrypted.getvalue(), "cases.xlsx").code == "encrypted"


def test_utf8_bom():
    decoded = decode_text(b"\xef\xbb\xbf" + table_text(",").encode("utf-8"))
    assert decoded.encoding == "utf-8-sig"
    assert not decoded.utf8.startswith(b"\xef\xbb\xbf")


def test_utf16_tab_file_from_excel_unicode_text():
    content = table_text("\t").encode("utf-16")
    parsed = parse_cases(content, "cases.txt", today=TODAY)
    assert parsed.encoding == "utf-16"
    assert parsed.delimiter == "\t"
    assert parsed.cases["case_no"].to_list() == ["C001", "C002"]


def test_utf16_without_bom():
    decoded = decode_text(table_text("\t").encode("utf-16-le"))
    assert decoded.encoding == "utf-16-le"


def test_semicolon_file():
    parsed = parse_cases(table_text(";").encode(), "cases.csv", today=TODAY)
    assert parsed.delimiter == ";"
    assert str(parsed.cases["total_due"][0]) == "1234.50"


def test_gbk_file():
    parsed = parse_cases(table_text(",").encode("gbk"), "cases.csv", today=TODAY)
    assert parsed.encoding == "gbk"
    assert parsed.cases["name"].to_list() == ["张三", "李四"]


def test_gb18030_file_outside_gbk():
    rows = [row[:] for row in ROWS]
    rows[1][1] = "张𠀀"  # U+20000 has no GBK code, only a 4-byte GB18030 one
    parsed = parse_cases(table_text(",", rows).encode("gb18030"), "c.csv", today=TODAY)
    assert parsed.encoding == "gb18030"
    assert parsed.cases["name"][0] == "张𠀀"


def test_gbk_after_long_ascii_start():
    filler = [[f"C{i:05d}", "Zhang", "100", "30", ""] for i in range(20_000)]
    rows = ROWS[:1] + filler + [["C99999", "王五", "100", "30", ""]]
    content = table_text(",", rows).encode("gbk")
    assert len(content) > 200_000
    parsed = parse_cases(content, "cases.csv", today=TODAY)
    assert parsed.encoding == "gbk"
    assert parsed.cases["name"][-1] == "王五"


def test_undecodable_text():
    content = "案件编号,欠款总额\n".encode() + b"C1,\x81\x20\xff\xfe 100\n"
    assert rejection(content).code == "undecodable"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiter_detected(delimiter):
    assert detect_delimiter(table_text(delimiter)) == delimiter


def test_delimiter_inside_quotes_does_not_count():
    rows = [
        ["案件编号", "备注", "欠款总额"],
        ["C1", "a;b;c;d;e", "1"],
        ["C2", "x;y;z;w", "2"],
    ]
    assert detect_delimiter(table_text(",", rows)) == ","
