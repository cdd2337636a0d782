"""Reading .xls files, built byte by byte because no .xls writer is installed.

The file is a compound file (MS-CFB, version 3, 512-byte sectors) holding one
stream called Workbook with BIFF8 records (MS-XLS): a globals substream that names
the sheet, and a worksheet substream with LABEL (text) and NUMBER cells.
"""

import struct
from datetime import date
from decimal import Decimal

import pytest

from services.files import FileRejected
from services.files.decode import sniff_format
from services.files.intake import parse_cases

END_OF_CHAIN = 0xFFFFFFFE
FREE_SECTOR = 0xFFFFFFFF
FAT_SECTOR = 0xFFFFFFFD
NO_STREAM = 0xFFFFFFFF
SECTOR = 512
MIN_STREAM = 4096  # smaller streams would live in the mini stream, not built here


def record(kind: int, data: bytes = b"") -> bytes:
    return struct.pack("<HH", kind, len(data)) + data


def begin(substream: int) -> bytes:
    """BOF record of a BIFF8 substream (0x0005 globals, 0x0010 worksheet)."""
    return record(0x0809, struct.pack("<HHHHII", 0x0600, substream, 0, 1997, 0, 6))


def cell(row: int, column: int, value: str | float) -> bytes:
    if isinstance(value, str):
        text = struct.pack("<HB", len(value), 1) + value.encode("utf-16-le")
        return record(0x0204, struct.pack("<HHH", row, column, 0) + text)
    return record(0x0203, struct.pack("<HHHd", row, column, 0, float(value)))


def workbook_stream(sheet: str, rows: list[list[str | float]]) -> bytes:
    cells = b"".join(
        cell(r, c, value) for r, row in enumerate(rows) for c, value in enumerate(row)
    )
    width = max(len(row) for row in rows)
    dimensions = record(0x0200, struct.pack("<IIHHH", 0, len(rows), 0, width, 0))
    worksheet = begin(0x0010) + dimensions + cells + record(0x000A)

    # PROT4REV records (workbook protection off) pad the stream past MIN_STREAM.
    padding = record(0x01AF, b"\x00\x00") * 800
    name = struct.pack("<BB", len(sheet), 1) + sheet.encode("utf-16-le")
    globals_size = len(begin(0x0005) + padding + record(0x000A)) + 4 + 6 + len(name)
    boundsheet = record(0x0085, struct.pack("<IBB", globals_size, 0, 0) + name)
    globals_ = begin(0x0005) + padding + boundsheet + record(0x000A)
    assert len(globals_) == globals_size
    return globals_ + worksheet


def directory_entry(name: str, kind: int, child: int, start: int, size: int) -> bytes:
    encoded = name.encode("utf-16-le") + b"\x00\x00"
    tree = struct.pack("<HBBIII", len(encoded), kind, 1, NO_STREAM, NO_STREAM, child)
    return (
        encoded.ljust(64, b"\x00") + tree + bytes(36) + struct.pack("<IQ", start, size)
    )


def compound_file(stream_name: str, stream: bytes) -> bytes:
    """Sector 0 is the FAT, sector 1 the directory, the stream follows from sector 2."""
    assert len(stream) >= MIN_STREAM
    sectors = -(-len(stream) // SECTOR)
    chain = [2 + index + 1 for index in range(sectors - 1)] + [END_OF_CHAIN]
    fat = [FAT_SECTOR, END_OF_CHAIN, *chain]
    fat += [FREE_SECTOR] * (SECTOR // 4 - len(fat))

    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
    header += struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + bytes(6)
    header += struct.pack("<IIIIII", 0, 1, 1, 0, MIN_STREAM, END_OF_CHAIN)
    header += struct.pack("<III", 0, END_OF_CHAIN, 0)
    header += struct.pack("<I", 0) + struct.pack("<I", FREE_SECTOR) * 108

    directory = directory_entry("Root Entry", 5, 1, END_OF_CHAIN, 0)
    directory += directory_entry(stream_name, 2, NO_STREAM, 2, len(stream))
    directory += bytes(2 * 128)
    body = stream.ljust(sectors * SECTOR, b"\x00")
    return header + struct.pack(f"<{SECTOR // 4}I", *fat) + directory + body


def xls_bytes(sheet: str, rows: list[list[str | float]]) -> bytes:
    return compound_file("Workbook", workbook_stream(sheet, rows))


ROWS = [
    ["案件编号", "客户姓名", "身份证号", "欠款总额", "逾期天数"],
    ["X1", "张三", 440106197501314624, 100.5, 30],
    ["X2", "李四", "11010519491231002X", 200, 45],
]


def test_xls_sniffed_from_bytes():
    assert sniff_format(xls_bytes("委案", ROWS), "cases.csv") == "xls"


def test_xls_parses_like_xlsx():
    parsed = parse_cases(xls_bytes("委案", ROWS), "cases.xls", today=date(2024, 11, 15))
    assert parsed.format == "xls"
    assert parsed.sheet == "委案"
    assert parsed.cases["case_no"].to_list() == ["X2"]
    assert parsed.cases["total_due"].to_list() == [Decimal("200.00")]
    assert {issue.code for issue in parsed.rejected} == {"id_number_lost_digits"}


def test_other_compound_file_not_a_table():
    content = compound_file("WordDocument", bytes(MIN_STREAM))
    with pytest.raises(FileRejected) as caught:
        sniff_format(content)
    assert caught.value.code == "not_a_table"
    assert caught.value.params["kind"] == "ole2"
