"""The case fields, the header words that name them, and header-row detection.

Header texts are compared after `normalise_header`, so "逾期本金（元）", "逾期本金(元)"
and "逾期本金 " are one key, and "Acct #" and "acct no." are another.
"""

import re
import unicodedata
from dataclasses import dataclass

import polars as pl

MONEY_FIELDS = ("principal", "interest", "fees", "total_due")
DATE_FIELDS = ("overdue_since", "placement_date", "recall_date")
TEXT_FIELDS = (
    "case_no",
    "name",
    "id_number",
    "phone",
    "email",
    "address",
    "province",
    "city",
    "customer_type",
    "product",
    "contract_no",
    "contact_name",
    "contact_relation",
    "contact_phone",
    "note",
)
FIELDS = (
    "case_no",
    "name",
    "id_number",
    "phone",
    "email",
    "address",
    "province",
    "city",
    "customer_type",
    "product",
    "contract_no",
    "principal",
    "interest",
    "fees",
    "total_due",
    "dpd_at_placement",
    "overdue_since",
    "placement_date",
    "recall_date",
    "contact_name",
    "contact_relation",
    "contact_phone",
    "note",
)

# Header words per field, written as creditors write them; lookups normalise both sides.
# A charge-off date (核销日期, Charge-off Date) is deliberately absent: lenders charge
# off months after the first missed payment, so it must not become overdue_since.
# Last payment date and amount are absent too, so they are kept in `extra`.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "case_no": (
        "案件编号", "案件号", "案件ID", "案号", "委案编号", "委案号", "催收编号",
        "账户编号", "账户号", "借据号", "借据编号", "贷款编号", "贷款账号", "Case No",
        "Case Number", "Case ID", "Case #", "Account Number", "Account No", "Account #",
        "Acct #", "Acct No", "Acct Number", "Account ID", "Loan ID", "Loan Number",
        "Loan No", "Reference Number", "Ref No",
    ),
    "name": (
        "姓名", "客户姓名", "客户名称", "借款人", "借款人姓名", "借款人名称", "债务人",
        "债务人姓名", "户名", "Name", "Debtor Name", "Customer Name", "Borrower",
        "Borrower Name", "Debtor", "Full Name", "Client Name", "Account Holder",
        "Consumer Name",
    ),
    "id_number": (
        "身份证号", "身份证号码", "身份证", "证件号码", "证件号", "身份证件号码",
        "客户身份证号", "借款人身份证号", "ID Number", "ID No", "National ID",
        "ID Card Number", "Resident ID",
    ),
    "phone": (
        "手机号", "手机号码", "手机", "联系电话", "电话", "电话号码", "移动电话",
        "客户手机", "客户电话", "客户手机号", "借款人手机号", "本人电话", "本人手机",
        "Phone", "Phone Number", "Mobile", "Mobile Number", "Cell", "Cell Phone",
        "Telephone", "Tel", "Contact Number", "Primary Phone",
    ),
    "email": (
        "邮箱", "电子邮箱", "电子邮件", "Email", "E-mail", "Email Address",
    ),
    "address": (
        "地址", "住址", "家庭地址", "居住地址", "联系地址", "现住址", "通讯地址",
        "户籍地址", "Address", "Street Address", "Home Address", "Mailing Address",
        "Address Line 1",
    ),
    "province": (
        "省份", "省", "所在省份", "归属省份", "State", "Province",
    ),
    "city": (
        "城市", "所在城市", "市", "地市", "City", "Town",
    ),
    "customer_type": (
        "客户类型", "客户类别", "借款人类型", "主体类型", "Customer Type",
        "Client Type", "Borrower Type",
    ),
    "product": (
        "产品", "产品类型", "产品名称", "贷款产品", "贷款类型", "业务类型", "Product",
        "Product Type", "Product Name", "Loan Type",
    ),
    "contract_no": (
        "合同号", "合同编号", "合同号码", "借款合同号", "贷款合同号", "Contract No",
        "Contract Number", "Contract ID", "Agreement Number",
    ),
    "principal": (
        "本金", "剩余本金", "逾期本金", "欠款本金", "未还本金", "本金余额", "Principal",
        "Outstanding Principal", "Principal Balance", "Principal Amount",
    ),
    "interest": (
        "利息", "逾期利息", "欠款利息", "未还利息", "Interest", "Accrued Interest",
        "Interest Due", "Interest Balance",
    ),
    "fees": (
        "费用", "手续费", "其他费用", "逾期费用", "违约金", "滞纳金", "罚息", "Fees",
        "Fee", "Late Fees", "Charges", "Other Fees", "Late Charges",
    ),
    "total_due": (
        "欠款总额", "应还总额", "委案金额", "逾期总额", "欠款金额", "应还金额",
        "逾期金额", "总欠款", "欠款余额", "委托金额", "待还金额", "应还款总额",
        "委案总金额", "Total Due", "Balance Due", "Current Balance", "Balance",
        "Amount Due", "Total Balance", "Outstanding Balance", "Total Amount Due",
        "Amount Owed", "Placement Amount",
    ),
    "dpd_at_placement": (
        "逾期天数", "委案逾期天数", "逾期天", "账龄天数", "DPD", "Days Past Due",
        "Days Delinquent", "Days Overdue", "Delinquency Days",
    ),
    "overdue_since": (
        "首次逾期日期", "逾期日期", "逾期开始日期", "逾期起始日期", "首逾日期",
        "最早逾期日期", "Delinquency Date", "First Delinquency Date",
        "Date of First Delinquency", "DOFD", "Overdue Since", "Overdue Date",
        "Default Date",
    ),
    "placement_date": (
        "委案日期", "委托日期", "委案时间", "Placement Date", "Assigned Date",
        "Assignment Date",
    ),
    "recall_date": (
        "退案日期", "委案到期日", "委案截止日期", "委托截止日期", "Recall Date",
        "Return Date", "Placement End Date",
    ),
    "contact_name": (
        "联系人", "联系人姓名", "紧急联系人", "紧急联系人姓名", "Contact Name",
        "Emergency Contact", "Reference Name",
    ),
    "contact_relation": (
        "联系人关系", "关系", "与借款人关系", "紧急联系人关系", "Relation",
        "Relationship", "Contact Relation",
    ),
    "contact_phone": (
        "联系人电话", "联系人手机", "联系人手机号", "紧急联系人电话", "Contact Phone",
        "Emergency Contact Phone", "Reference Phone",
    ),
    "note": (
        "备注", "催收备注", "备注信息", "Note", "Notes", "Collector Notes", "Remarks",
        "Remark", "Comments", "Comment", "Memo",
    ),
}  # fmt: skip

SERIAL_HEADERS = ("序号", "行号", "No", "No.", "#", "S/N", "SN", "Seq")
TOTALS_WORDS = ("合计", "总计", "小计", "Total", "Totals", "Grand Total", "Sum")
HEADER_SEARCH_ROWS = 30

_BRACKETED = re.compile(r"[(\[【〔{<《][^)\]】〕}>》]*[)\]】〕}>》]")
_TRAILING_UNIT = re.compile(r"/(元|万元|天|日|%|rmb|cny|usd|\$|¥)$")
_PUNCTUATION = re.compile(r"[\s_\-./:：,，、*'\"?？]+")


def normalise_header(text: str) -> str:
    """Return the comparison key of a header text.

    Full-width characters become half-width, letters lower-case, and bracketed parts
    such as units ((元), (¥), (%), (天)) are dropped, as are spaces and punctuation.
    "#" is read as "no", so "Acct #" and "Acct No." give the same key.
    """
    key = unicodedata.normalize("NFKC", text).strip().lower()
    key = _BRACKETED.sub("", key)
    key = _TRAILING_UNIT.sub("", key.strip())
    key = key.replace("#", "no").replace("№", "no")
    return _PUNCTUATION.sub("", key)


FIELD_BY_KEY: dict[str, str] = {
    normalise_header(word): field for field, words in SYNONYMS.items() for word in words
}
SERIAL_KEYS = frozenset(normalise_header(word) for word in SERIAL_HEADERS)
TOTALS_KEYS = frozenset(normalise_header(word) for word in TOTALS_WORDS)


def field_for_header(text: str) -> str | None:
    return FIELD_BY_KEY.get(normalise_header(text))


@dataclass(frozen=True)
class HeaderLayout:
    """Position of the header row and of the columns kept below it.

    `row_index` is the header's position in the table's `cells` (0-based), `columns`
    the positions of the kept columns, `headers` their texts in the same order, and
    `serial_column` the position of a leading serial-number column that is ignored.
    """

    row_index: int
    columns: list[int]
    headers: list[str]
    mapping: dict[str, str | None]
    serial_column: int | None


def find_header_row(cells: pl.DataFrame) -> int | None:
    """Return the index of the first row that reads as a header, or None.

    A header row has at least two cells that name known fields, one of them a case
    number, a contract number or an amount. Only the first 30 rows are searched, so
    title rows above the header are skipped and a notes sheet has no header.
    """
    for index, row in enumerate(cells.head(HEADER_SEARCH_ROWS).iter_rows()):
        fields = {field_for_header(value) for value in row if value}
        fields.discard(None)
        key_fields = fields & {"case_no", "contract_no", *MONEY_FIELDS}
        if len(fields) >= 2 and key_fields:
            return index
    return None


def read_header(cells: pl.DataFrame, row_index: int) -> HeaderLayout:
    """Build the layout of the header at `row_index` with the detected mapping.

    Columns with no header text are kept under their spreadsheet letter in brackets,
    such as "[F]", when they hold data, and dropped when empty. A header text that
    repeats gets " (2)", " (3)", ... so every column has its own key.
    """
    texts = [(value or "").strip() for value in cells.row(row_index)]
    body = cells.slice(row_index + 1)
    filled = body.select(pl.all().is_not_null().any()).row(0) if body.height else ()

    columns, headers, seen = [], [], {}
    for index, text in enumerate(texts):
        if not text and not (filled and filled[index]):
            continue
        header = text or f"[{column_letter(index)}]"
        seen[header] = seen.get(header, 0) + 1
        if seen[header] > 1:
            header = f"{header} ({seen[header]})"
        columns.append(index)
        headers.append(header)

    serial = None
    if columns and normalise_header(headers[0]) in SERIAL_KEYS:
        serial = columns[0]
    return HeaderLayout(
        row_index=row_index,
        columns=columns,
        headers=headers,
        mapping=map_headers(headers),
        serial_column=serial,
    )


def map_headers(headers: list[str]) -> dict[str, str | None]:
    """Map each header to a field, or None when it names none and goes to `extra`.

    When two headers name one field, the first keeps it. A contract number column
    becomes the case number when the file has no case number column.
    """
    mapping: dict[str, str | None] = {}
    for header in headers:
        field = field_for_header(header)
        mapping[header] = None if field in mapping.values() else field

    if "case_no" not in mapping.values() and "contract_no" in mapping.values():
        contract = next(key for key, value in mapping.items() if value == "contract_no")
        mapping[contract] = "case_no"
    return mapping


def is_totals_text(value: str | None) -> bool:
    return value is not None and normalise_header(value) in TOTALS_KEYS


def column_letter(index: int) -> str:
    """Return the spreadsheet letter of a 0-based column (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters
