"""Sniff a file's format from its bytes, decode text files and find the delimiter.

The file name's extension is never trusted, because creditors rename CSV files to
.xls and screenshots to .csv. Only the magic bytes and the container's contents
decide.
"""

import codecs
import csv
import io
import zipfile
from dataclasses import dataclass

from services.files import FileRejected

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
IMAGE_MAGICS = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
    b"%PDF-": "pdf",
    b"\x1f\x8b": "gzip",
    b"Rar!": "rar",
    b"7z\xbc\xaf\x27\x1c": "7z",
}
DELIMITERS = (",", "\t", ";")
SAMPLE_CHARS = 64 * 1024
UTF8_SAMPLE_BYTES = 3 * SAMPLE_CHARS
SAMPLE_RECORDS = 30
TEXT_KIND = "text"


@dataclass(frozen=True)
class DecodedText:
    """A text file re-encoded as UTF-8 without BOM, ready for the CSV reader."""

    utf8: bytes
    encoding: str
    sample: str


def sniff_format(content: bytes, filename: str = "") -> str:
    """Return "xlsx", "xls" or "text", or raise FileRejected for anything else."""
    if not content:
        if filename.lower().endswith((".xlsx", ".xlsm", ".xls")):
            raise FileRejected("corrupt_workbook", reason="empty")
        raise FileRejected("file_empty")

    if content.startswith(ZIP_MAGICS):
        return _zip_format(content)
    if content.startswith(OLE2_MAGIC):
        return _ole2_format(content)
    for magic, kind in IMAGE_MAGICS.items():
        if content.startswith(magic):
            raise FileRejected("not_a_table", kind=kind)
    return TEXT_KIND


def _zip_format(content: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise FileRejected("corrupt_workbook", reason="bad_zip") from None

    if "xl/workbook.xml" in names:
        return "xlsx"
    if "xl/workbook.bin" in names:
        raise FileRejected("not_a_table", kind="xlsb")
    if "word/document.xml" in names:
        raise FileRejected("not_a_table", kind="docx")
    if "content.xml" in names and "mimetype" in names:
        raise FileRejected("not_a_table", kind="opendocument")
    raise FileRejected("not_a_table", kind="zip")


def _ole2_format(content: bytes) -> str:
    """Tell an .xls workbook from a password-protected xlsx or another OLE2 file.

    Excel wraps a password-protected xlsx in an OLE2 compound file whose main stream
    is called EncryptedPackage, while an .xls keeps its sheets in a stream called
    Workbook (Book in Excel 5 files).
    """
    streams = _ole2_stream_names(content)
    if "EncryptedPackage" in streams:
        raise FileRejected("encrypted")
    if "Workbook" in streams or "Book" in streams:
        return "xls"
    raise FileRejected("not_a_table", kind="ole2")


def _ole2_stream_names(content: bytes) -> set[str]:
    """Find the names of a compound file's streams without parsing its sector chains.

    Directory entries are 128 bytes, start on 128-byte boundaries after the header
    sector, and begin with the name in UTF-16-LE followed at byte 64 by the name's
    length in bytes including the terminating NUL. A name found at such a boundary
    with a matching length field is a directory entry, not cell text.
    """
    sector_size = 1 << int.from_bytes(content[30:32], "little")
    if sector_size not in (512, 4096):
        return set()

    found = set()
    for name in ("EncryptedPackage", "Workbook", "Book"):
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        start = content.find(encoded)
        while start != -1:
            length_field = int.from_bytes(content[start + 64 : start + 66], "little")
            if (start - sector_size) % 128 == 0 and length_field == len(encoded):
                found.add(name)
                break
            start = content.find(encoded, start + 1)
    return found


def decode_text(content: bytes, *, check_all_utf8: bool = False) -> DecodedText:
    """Decode a text table file and return it as UTF-8.

    Tried in order: a BOM (UTF-8, UTF-16 LE or BE), UTF-16 without BOM recognised by
    its NUL bytes, UTF-8, GBK and then GB18030 (a superset of GBK). The encoding name
    reported is the first codec that decodes the file.

    Unless `check_all_utf8` is set, UTF-8 is accepted when the first 192 KiB decode,
    and the rest is left to the CSV reader, which validates UTF-8 as it parses (a
    full check in Python costs about a second for 200 MiB). On a failure there, the
    caller decodes again with `check_all_utf8=True`.
    """
    encoding = _detect_encoding(content, check_all_utf8)
    if encoding is None and _control_share(content[:4096].decode("latin-1")) > 0.05:
        raise FileRejected("not_a_table", kind="binary")
    if encoding is None:
        raise FileRejected("undecodable")

    if encoding in ("utf-8", "utf-8-sig"):
        utf8 = content[len(codecs.BOM_UTF8) :] if encoding == "utf-8-sig" else content
        sample = utf8[:UTF8_SAMPLE_BYTES].decode("utf-8", errors="ignore")
    else:
        text = content.decode(encoding)
        utf8 = text.encode("utf-8")
        sample = text[:SAMPLE_CHARS]

    if "\x00" in sample or _control_share(sample) > 0.05:
        raise FileRejected("not_a_table", kind="binary")
    return DecodedText(utf8=utf8, encoding=encoding, sample=sample)


def _detect_encoding(content: bytes, check_all_utf8: bool) -> str | None:
    if content.startswith(codecs.BOM_UTF8):
        valid = _decodes_utf8(content[len(codecs.BOM_UTF8) :], check_all_utf8)
        return "utf-8-sig" if valid else None
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16" if _decodes(content, "utf-16") else None

    head = content[:4096]
    if head.count(0) > len(head) // 4:
        odd_zeros = head[1::2].count(0)
        even_zeros = head[0::2].count(0)
        candidate = "utf-16-le" if odd_zeros > even_zeros else "utf-16-be"
        return candidate if _decodes(content, candidate) else None

    if _decodes_utf8(content, check_all_utf8):
        return "utf-8"
    for encoding in ("gbk", "gb18030"):
        if _decodes(content, encoding):
            return encoding
    return None


def _decodes_utf8(content: bytes, check_all: bool) -> bool:
    if check_all or len(content) <= UTF8_SAMPLE_BYTES:
        return _decodes(content, "utf-8")
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        # A character cut at the sample's end waits in the decoder, not an error.
        decoder.decode(content[:UTF8_SAMPLE_BYTES], final=False)
    except UnicodeDecodeError:
        return False
    return True


def _decodes(content: bytes, encoding: str) -> bool:
    try:
        codecs.decode(content, encoding)
    except UnicodeDecodeError:
        return False
    return True


def _control_share(sample: str) -> float:
    if not sample:
        return 0.0
    controls = sum(1 for char in sample if char < " " and char not in "\t\r\n")
    return controls / len(sample)


def detect_delimiter(sample: str) -> str:
    """Pick comma, tab or semicolon from the first records of a text table.

    Each candidate splits the sample with the csv module, so a delimiter inside a
    quoted value does not count. The winner gives the most records that share the most
    common field count (above one field), and ties go to comma, then tab.
    """
    lines = sample.splitlines(keepends=True)
    if len(sample) >= SAMPLE_CHARS and len(lines) > 1:
        lines = lines[:-1]
    text = "".join(lines)

    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        score = _delimiter_score(text, delimiter)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _delimiter_score(text: str, delimiter: str) -> tuple[int, int]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    counts: dict[int, int] = {}
    try:
        for index, record in enumerate(reader):
            if index >= SAMPLE_RECORDS:
                break
            if len(record) > 1:
                counts[len(record)] = counts.get(len(record), 0) + 1
    except csv.Error:
        return (0, 0)

    if not counts:
        return (0, 0)
    width, agreeing = max(counts.items(), key=lambda item: (item[1], item[0]))
    return (agreeing, width)
