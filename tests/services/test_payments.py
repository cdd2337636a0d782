"""Payment import, manual posting, the unmatched queue and recovery confirmation,
on PostgreSQL, checked against the fixtures' expected figures."""

import io
import json
import threading
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import xlsxwriter
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import (
    AuditEntry,
    CommissionBasis,
    Payment,
    PaymentImportFile,
    UnmatchedPayment,
)
from recova.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services import payments
from services.actors import Actor
from services.segments import local_today
from tests.approval_helpers import (
    CREDITOR,
    OverlapGate,
    case_row,
    import_cases,
    import_fixture_payments,
    import_payments,
)
from tests.conftest import FIXTURES
from tests.factories import make_user

EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
PAYMENTS = EXPECTED["payments_zh.csv"]
HEADER = "还款流水号,案件编号,还款金额,还款日期,还款渠道,原流水号\n"


def payment_file(*rows: str, header: str = HEADER) -> bytes:
    return (header + "\n".join(rows) + "\n").encode("utf-8")


@pytest.fixture
def placed(session):
    import_cases(session)
    return session


# The fixture file, figure by figure.


def test_fixture_posted_count(placed):
    report = import_fixture_payments(placed)
    assert report.data_rows == PAYMENTS["rows"]
    assert report.posted == PAYMENTS["posted"]


def test_fixture_unmatched(placed):
    report = import_fixture_payments(placed)
    assert report.unmatched == PAYMENTS["unmatched"]


def test_fixture_duplicates_skipped(placed):
    report = import_fixture_payments(placed)
    skipped = [
        {"row": item["row"], "transaction": item["transaction"]}
        for item in report.duplicates_skipped
    ]
    assert skipped == PAYMENTS["duplicates_skipped"]


def test_fixture_recovered_total_to_the_cent(placed):
    report = import_fixture_payments(placed)
    stored = placed.scalar(select(func.sum(Payment.amount)))
    assert report.recovered_total == Decimal(PAYMENTS["recovered_total"])
    assert stored == Decimal(PAYMENTS["recovered_total"])


def test_fixture_paid_in_full(placed):
    report = import_fixture_payments(placed)
    assert report.paid_in_full == PAYMENTS["paid_in_full"]
    for case_no in PAYMENTS["paid_in_full"]:
        row = case_row(placed, case_no)
        assert row.status == "paid", case_no
        assert row.balance == Decimal("0.00"), case_no


def test_fixture_overpaid(placed):
    report = import_fixture_payments(placed)
    expected = {case: Decimal(amount) for case, amount in PAYMENTS["overpaid"].items()}
    assert report.overpaid == expected
    for case_no, amount in expected.items():
        assert case_row(placed, case_no).overpaid == amount


def test_fixture_balances_after(placed):
    import_fixture_payments(placed)
    for case_no, balance in PAYMENTS["balance_after"].items():
        assert case_row(placed, case_no).balance == Decimal(balance), case_no


def test_fixture_reversal_links_original(placed):
    import_fixture_payments(placed)
    reversal = PAYMENTS["reversal"]
    original = placed.scalar(
        select(Payment).where(Payment.transaction_id == reversal["reverses"])
    )
    reversing = placed.scalar(select(Payment).where(Payment.row_no == reversal["row"]))
    assert reversing.reverses_id == original.id
    assert reversing.amount == -original.amount


def test_fixture_json_report_shape(placed):
    data = import_fixture_payments(placed).as_json()
    assert data["overpaid"] == PAYMENTS["overpaid"]
    assert data["recovered_total"] == PAYMENTS["recovered_total"]
    for key in (
        "posted",
        "unmatched",
        "duplicates_skipped",
        "rejected",
        "paid_in_full",
        "overpaid",
    ):
        assert key in data, key


def test_second_import_posts_nothing(placed):
    import_fixture_payments(placed)
    second = import_fixture_payments(placed)
    assert second.posted == 0
    assert second.unmatched == []
    assert len(second.duplicates_skipped) == PAYMENTS["rows"]
    assert placed.scalar(select(func.count()).select_from(Payment)) == 5
    for case_no, balance in PAYMENTS["balance_after"].items():
        assert case_row(placed, case_no).balance == Decimal(balance), case_no


def test_unmatched_row_queued_with_reason(placed):
    import_fixture_payments(placed)
    queued = placed.scalars(select(UnmatchedPayment)).one()
    assert queued.transaction_id == "TX0004"
    assert queued.reason == "case_not_found"
    assert queued.case_no == "GBK2411099999"
    assert queued.amount == Decimal("300.00")
    assert queued.status == "open"


def test_original_file_kept(placed):
    report = import_fixture_payments(placed)
    stored = placed.get(PaymentImportFile, report.import_id)
    assert stored.content == (FIXTURES / "payments_zh.csv").read_bytes()


def test_import_audited(placed):
    report = import_fixture_payments(placed)
    entry = placed.scalars(
        select(AuditEntry).where(AuditEntry.action == "payments_imported")
    ).one()
    assert entry.entity_id == str(report.import_id)
    assert entry.after["posted"] == PAYMENTS["posted"]
    assert entry.after["recovered"] == PAYMENTS["recovered_total"]


def test_import_needs_finance_role(placed):
    collector = make_user(placed, "cole", role="collector")
    with pytest.raises(PermissionDenied):
        import_fixture_payments(placed, actor=collector)


def test_import_for_unknown_creditor(placed):
    with pytest.raises(NotFound) as raised:
        import_fixture_payments(placed, creditor="No Such Bank")
    assert raised.value.code == "creditor_not_found"


# Matching.


def test_case_number_spaces_ignored(placed):
    report = import_payments(
        placed, payment_file("S1,  GBK2411000002  ,18.13,2024-12-05,微信,")
    )
    assert report.posted == 1
    assert case_row(placed, "GBK2411000002").balance == Decimal("1000.00")


ID_CASES = (
    "案件编号,客户姓名,身份证号,欠款总额,逾期天数\n"
    "ID-1,张三,110105198011170582,1000.00,30\n"
    "ID-2,李四,440106197412129394,2000.00,30\n"
    "ID-3,李四,440106197412129394,3000.00,30\n"
)
ID_HEADER = "还款流水号,身份证号,还款金额,还款日期\n"


@pytest.fixture
def id_bank(session):
    from services import intake

    intake.import_cases(
        session=session,
        actor=Actor.operator(),
        request=intake.ImportRequest(creditor="ID Bank"),
        content=ID_CASES.encode("utf-8"),
        filename="id_cases.csv",
    )
    return session


def test_match_by_id_number_single_open_case(id_bank):
    report = import_payments(
        id_bank,
        payment_file("P1,110105198011170582,400.00,2024-12-01", header=ID_HEADER),
        creditor="ID Bank",
    )
    assert report.posted == 1
    assert case_row(id_bank, "ID-1", "ID Bank").balance == Decimal("600.00")


def test_id_number_with_two_open_cases_unmatched(id_bank):
    report = import_payments(
        id_bank,
        payment_file("P2,440106197412129394,100.00,2024-12-01", header=ID_HEADER),
        creditor="ID Bank",
    )
    queued = id_bank.scalars(select(UnmatchedPayment)).one()
    assert report.unmatched == ["P2"]
    assert queued.reason == "id_number_ambiguous"


def test_unknown_id_number_unmatched(id_bank):
    import_payments(
        id_bank,
        payment_file("P3,110105199901011234,5.00,2024-12-01", header=ID_HEADER),
        creditor="ID Bank",
    )
    queued = id_bank.scalars(select(UnmatchedPayment)).one()
    assert queued.reason == "id_number_not_found"


def test_id_number_counts_only_open_cases(id_bank):
    header = "还款流水号,案件编号,身份证号,还款金额,还款日期\n"
    import_payments(
        id_bank,
        payment_file("Q1,ID-2,,2000.00,2024-12-01", header=header),
        creditor="ID Bank",
    )
    report = import_payments(
        id_bank,
        payment_file("Q2,,440106197412129394,50.00,2024-12-02", header=header),
        creditor="ID Bank",
    )
    assert report.posted == 1
    assert case_row(id_bank, "ID-3", "ID Bank").balance == Decimal("2950.00")


def test_wrong_creditor_file_names_owner(placed):
    import_cases(placed, "cases_en.csv", creditor="Other Bank")
    report = import_fixture_payments(placed, creditor="Other Bank")
    assert report.posted == 0
    assert sorted(report.unmatched) == [
        "TX0001",
        "TX0002",
        "TX0003",
        "TX0004",
        "TX0005",
    ]
    notices = [
        issue for issue in report.file_issues if issue["code"] == "other_creditor"
    ]
    assert len(notices) == 1
    assert CREDITOR in notices[0]["message"]


def test_wrong_creditor_file_rejects_reversal(placed):
    import_cases(placed, "cases_en.csv", creditor="Other Bank")
    report = import_fixture_payments(placed, creditor="Other Bank")
    codes = {issue["row"]: issue["code"] for issue in report.rejected}
    assert codes == {8: "reversal_original_not_posted"}


# Bad input, row by row.


def test_zero_amount_rejected(placed):
    report = import_payments(placed, payment_file("Z1,GBK2411000002,0.00,2024-12-05,,"))
    assert [issue["code"] for issue in report.rejected] == ["amount_zero"]
    assert report.posted == 0


def test_negative_without_original_rejected(placed):
    report = import_payments(
        placed, payment_file("N1,GBK2411000002,-10.00,2024-12-05,,")
    )
    issue = report.rejected[0]
    assert issue["code"] == "reversal_without_original"
    assert issue["row"] == 2
    assert issue["message"]


def test_reversal_of_unknown_transaction_rejected(placed):
    report = import_payments(
        placed, payment_file("R1,GBK2411000002,-10.00,2024-12-05,,TX9999")
    )
    assert [issue["code"] for issue in report.rejected] == [
        "reversal_original_not_posted"
    ]
    assert placed.scalar(select(func.count()).select_from(Payment)) == 0


def test_reversal_of_queued_payment_rejected(placed):
    import_fixture_payments(placed)
    report = import_payments(
        placed, payment_file("R2,GBK2411099999,-300.00,2024-12-05,,TX0004")
    )
    assert [issue["code"] for issue in report.rejected] == [
        "reversal_original_not_posted"
    ]


def test_reversal_amount_must_match(placed):
    import_fixture_payments(placed)
    report = import_payments(
        placed, payment_file("R3,GBK2411000002,-100.00,2024-12-05,,TX0002")
    )
    assert [issue["code"] for issue in report.rejected] == ["reversal_amount_mismatch"]


def test_second_reversal_rejected(placed):
    import_fixture_payments(placed)
    report = import_payments(
        placed, payment_file("R4,GBK2411000007,-1000.00,2024-12-05,,TX0005")
    )
    assert [issue["code"] for issue in report.rejected] == [
        "reversal_original_already_reversed"
    ]


def test_positive_amount_naming_original_rejected(placed):
    report = import_payments(
        placed, payment_file("R5,GBK2411000002,10.00,2024-12-05,,TX0001")
    )
    assert [issue["code"] for issue in report.rejected] == [
        "original_on_positive_amount"
    ]


def test_row_errors_in_one_file(placed):
    report = import_payments(
        placed,
        payment_file(
            ",GBK2411000002,10.00,2024-12-05,,",
            "E2,GBK2411000002,abc,2024-12-05,,",
            "E3,GBK2411000002,10.00,someday,,",
            "E4,GBK2411000002,,2024-12-05,,",
            "E5,GBK2411000002,10.00,,,",
            "E6,GBK2411000002,10.00,2024-12-05,,",
        ),
    )
    codes = {issue["row"]: issue["code"] for issue in report.rejected}
    assert codes == {
        2: "transaction_id_missing",
        3: "amount_unreadable",
        4: "date_unreadable",
        5: "amount_missing",
        6: "date_missing",
    }
    assert report.posted == 1


def test_file_without_payment_header_refused(placed):
    with pytest.raises(InvalidInput) as raised:
        import_payments(placed, "姓名,电话\n张三,13800000000\n".encode())
    assert raised.value.code == "file.payment_no_header"


# Balances and statuses.


def test_reversal_restores_balance_and_status(placed):
    import_fixture_payments(placed)
    report = import_payments(
        placed, payment_file("R6,GBK2411000001,-255849.68,2024-12-06,,TX0001")
    )
    row = case_row(placed, "GBK2411000001")
    assert report.posted == 1
    assert report.recovered_total == Decimal("-255849.68")
    assert row.balance == Decimal("255849.68")
    assert row.status == "new"


def test_reversal_cancels_overpayment(placed):
    import_fixture_payments(placed)
    import_payments(
        placed, payment_file("R7,GBK2411000005,-67795.16,2024-12-06,,TX0003")
    )
    row = case_row(placed, "GBK2411000005")
    assert row.balance == Decimal("67707.16")
    assert row.overpaid == Decimal("0.00")
    assert row.status == "new"


def test_overpayment_grows_on_paid_case(placed):
    import_fixture_payments(placed)
    report = import_payments(
        placed, payment_file("O1,GBK2411000005,12.00,2024-12-06,,")
    )
    assert report.overpaid == {"GBK2411000005": Decimal("100.00")}
    assert report.paid_in_full == []
    assert case_row(placed, "GBK2411000005").status == "paid"


def test_payment_after_write_off_is_recovery(placed):
    placed.execute(
        text(
            "UPDATE cases SET status = 'written_off', balance = 0 "
            "WHERE case_no = 'GBK2411000002'"
        )
    )
    placed.commit()
    report = import_payments(
        placed, payment_file("W1,GBK2411000002,300.00,2024-12-06,,")
    )
    row = case_row(placed, "GBK2411000002")
    payment = placed.scalar(select(Payment).where(Payment.transaction_id == "W1"))
    assert report.posted == 1
    assert report.recovered_total == Decimal("300.00")
    assert payment.after_write_off
    assert row.status == "written_off"
    assert row.balance == Decimal("0.00")
    assert row.overpaid == Decimal("0.00")


def test_reversal_after_write_off_keeps_balance(placed):
    placed.execute(
        text(
            "UPDATE cases SET status = 'written_off', balance = 0 "
            "WHERE case_no = 'GBK2411000002'"
        )
    )
    placed.commit()
    import_payments(placed, payment_file("W2,GBK2411000002,300.00,2024-12-06,,"))
    import_payments(placed, payment_file("W3,GBK2411000002,-300.00,2024-12-07,,W2"))
    row = case_row(placed, "GBK2411000002")
    assert row.balance == Decimal("0.00")
    assert row.status == "written_off"


def test_payment_in_and_reversal_in_same_file(placed):
    report = import_payments(
        placed,
        payment_file(
            "F1,GBK2411000002,1018.13,2024-12-06,,",
            "F2,GBK2411000002,-1018.13,2024-12-07,,F1",
        ),
    )
    row = case_row(placed, "GBK2411000002")
    assert report.posted == 2
    assert report.paid_in_full == []
    assert row.balance == Decimal("1018.13")
    assert row.status == "new"


def test_case_version_bumped(placed):
    before = case_row(placed, "GBK2411000002").version
    import_payments(placed, payment_file("V1,GBK2411000002,1.00,2024-12-06,,"))
    assert case_row(placed, "GBK2411000002").version == before + 1


# Other file shapes.


def test_gbk_payment_file(placed):
    content = (
        "流水号,案件号,实还金额,入账日期\n"
        "G1,GBK2411000002,￥18.13,2024年12月5日\n"
        "G2,GBK2411000007,０.０４万,20241206\n"
    ).encode("gbk")
    report = import_payments(placed, content, name="回款.csv")
    assert report.posted == 2
    assert case_row(placed, "GBK2411000002").balance == Decimal("1000.00")
    assert case_row(placed, "GBK2411000007").balance == Decimal("863.14")


def test_xlsx_payment_file_with_title_row(placed):
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer)
    sheet = workbook.add_worksheet("回款明细")
    sheet.write_row(0, 0, ["2024年12月回款明细"])
    sheet.write_row(1, 0, ["序号", "交易流水号", "案件编号", "入账金额", "入账日期"])
    sheet.write_row(2, 0, [1, 20241206001, "GBK2411000002", 18.13])
    sheet.write_datetime(
        2, 4, datetime(2024, 12, 6), workbook.add_format({"num_format": "yyyy-mm-dd"})
    )
    sheet.write_row(3, 0, ["合计", None, None, 18.13])
    workbook.close()
    report = import_payments(placed, buffer.getvalue(), name="payments.xlsx")
    payment = placed.scalars(select(Payment)).one()
    assert report.posted == 1
    assert report.rejected == []
    assert payment.transaction_id == "20241206001"
    assert payment.paid_on == date(2024, 12, 6)


# Two imports of one file at the same time.


def test_concurrent_imports_post_each_transaction_once(placed, engine):
    content = (FIXTURES / "payments_zh.csv").read_bytes()
    barrier = threading.Barrier(2)
    gate = OverlapGate(engine)
    reports, errors = [], []

    def run() -> None:
        with Session(engine, expire_on_commit=False) as own:
            # Whichever import commits first waits until the other one is blocked.
            gate.watch(own)
            barrier.wait()
            try:
                reports.append(import_payments(own, content, name="payments_zh.csv"))
            except Exception as error:  # noqa: BLE001 - the test reports any failure
                errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sorted(report.posted for report in reports) == [0, PAYMENTS["posted"]]
    assert placed.scalar(select(func.count()).select_from(Payment)) == 5
    assert placed.scalar(select(func.count()).select_from(UnmatchedPayment)) == 1
    for case_no, balance in PAYMENTS["balance_after"].items():
        assert case_row(placed, case_no).balance == Decimal(balance), case_no


# Manual posting and the unmatched queue.


def manual(**fields) -> payments.ManualPayment:
    values = {
        "creditor": CREDITOR,
        "case_no": "GBK2411000002",
        "transaction_id": "M1",
        "amount": Decimal("18.13"),
        "paid_on": date(2024, 12, 6),
        "channel": "柜台",
        "evidence": "银行回单 20241206-88",
        **fields,
    }
    return payments.ManualPayment(**values)


def test_manual_post_with_evidence(placed):
    finance = make_user(placed, "fay", role="finance")
    payment = payments.post_payment(
        session=placed,
        actor=finance,
        data=manual(),
        evidence_file=("receipt.pdf", b"%PDF-1.4 receipt"),
    )
    entry = placed.scalars(
        select(AuditEntry).where(AuditEntry.action == "payment_posted")
    ).one()
    assert payment.source == "manual"
    assert payment.evidence == "银行回单 20241206-88"
    assert payment.evidence_file_id is not None
    assert case_row(placed, "GBK2411000002").balance == Decimal("1000.00")
    assert entry.before["balance"] == "1018.13"
    assert entry.after["balance"] == "1000.00"
    assert entry.detail["case_no"] == "GBK2411000002"


def test_manual_post_repeated_transaction(placed):
    finance = make_user(placed, "fay", role="finance")
    payments.post_payment(session=placed, actor=finance, data=manual())
    with pytest.raises(Conflict) as raised:
        payments.post_payment(session=placed, actor=finance, data=manual())
    assert raised.value.code == "transaction_exists"
    assert case_row(placed, "GBK2411000002").balance == Decimal("1000.00")


def test_manual_post_queued_transaction_refused(placed):
    finance = make_user(placed, "fay", role="finance")
    import_fixture_payments(placed)
    with pytest.raises(Conflict):
        payments.post_payment(
            session=placed, actor=finance, data=manual(transaction_id="TX0004")
        )


def test_manual_post_future_date_refused(placed):
    finance = make_user(placed, "fay", role="finance")
    # Tomorrow in the configured time zone, which may be a day ahead of UTC.
    tomorrow = local_today() + timedelta(days=1)
    with pytest.raises(InvalidInput) as raised:
        payments.post_payment(
            session=placed, actor=finance, data=manual(paid_on=tomorrow)
        )
    assert raised.value.code == "paid_on_in_future"


def test_manual_post_unknown_case(placed):
    finance = make_user(placed, "fay", role="finance")
    with pytest.raises(NotFound):
        payments.post_payment(
            session=placed, actor=finance, data=manual(case_no="NOPE")
        )


def test_manual_post_needs_finance(placed):
    for username, role in (("mona", "manager"), ("ada", "admin")):
        actor = make_user(placed, username, role=role)
        with pytest.raises(PermissionDenied):
            payments.post_payment(session=placed, actor=actor, data=manual())


def test_match_unmatched_by_hand(placed):
    finance = make_user(placed, "fay", role="finance")
    import_fixture_payments(placed)
    queued = payments.list_unmatched(session=placed, actor=finance)
    payment = payments.match_unmatched(
        session=placed,
        actor=finance,
        data=payments.UnmatchedMatch(
            unmatched_id=queued[0]["id"],
            case_no="GBK2411000003",
            evidence="债务人来电确认，案号填错",
        ),
    )
    entry = placed.scalars(
        select(AuditEntry).where(AuditEntry.action == "payment_matched")
    ).one()
    placed.expire_all()
    stored = placed.get(UnmatchedPayment, queued[0]["id"])
    assert payment.transaction_id == "TX0004"
    assert payment.source == "matched"
    assert stored.status == "matched"
    assert stored.payment_id == payment.id
    assert entry.detail["unmatched_id"] == queued[0]["id"]
    assert payments.list_unmatched(session=placed, actor=finance) == []


def test_match_twice_refused(placed):
    finance = make_user(placed, "fay", role="finance")
    import_fixture_payments(placed)
    queued = payments.list_unmatched(session=placed, actor=finance)[0]
    data = payments.UnmatchedMatch(
        unmatched_id=queued["id"], case_no="GBK2411000003", evidence="确认"
    )
    payments.match_unmatched(session=placed, actor=finance, data=data)
    with pytest.raises(Conflict) as raised:
        payments.match_unmatched(session=placed, actor=finance, data=data)
    assert raised.value.code == "unmatched_already_matched"


# Recovery confirmation.


def set_commission_rate(session, rate: str) -> int:
    batch_id = session.execute(
        text("UPDATE batches SET commission_rate = :rate RETURNING id"), {"rate": rate}
    ).scalar_one()
    session.commit()
    return batch_id


def test_recovery_confirmation_records_commission(placed):
    finance = make_user(placed, "fay", role="finance")
    collector = make_user(placed, "cole", role="collector")
    placed.execute(
        text("UPDATE cases SET collector_id = :id WHERE case_no = 'GBK2411000001'"),
        {"id": collector.id},
    )
    placed.commit()
    batch_id = set_commission_rate(placed, "0.1500")
    import_fixture_payments(placed)

    confirmation = payments.confirm_recoveries(
        session=placed,
        actor=finance,
        data=payments.RecoveryConfirmationRequest(
            batch_id=batch_id, up_to=date(2024, 12, 31), statement_ref="DZD-202412"
        ),
    )
    bases = {
        basis.collector_id: basis for basis in placed.scalars(select(CommissionBasis))
    }
    assert confirmation.payment_count == 5
    assert confirmation.recovered == Decimal(PAYMENTS["recovered_total"])
    assert confirmation.commission == Decimal("48621.73")
    assert bases[collector.id].recovered == Decimal("255849.68")
    assert bases[collector.id].commission == Decimal("38377.45")
    assert bases[None].recovered == Decimal("68295.16")


def test_recovery_confirmed_once(placed):
    finance = make_user(placed, "fay", role="finance")
    batch_id = set_commission_rate(placed, "0.1000")
    import_fixture_payments(placed)
    data = payments.RecoveryConfirmationRequest(
        batch_id=batch_id, up_to=date(2024, 12, 31)
    )
    payments.confirm_recoveries(session=placed, actor=finance, data=data)
    with pytest.raises(InvalidInput) as raised:
        payments.confirm_recoveries(session=placed, actor=finance, data=data)
    assert raised.value.code == "nothing_to_confirm"


def test_recovery_summary_up_to_date(placed):
    finance = make_user(placed, "fay", role="finance")
    batch_id = set_commission_rate(placed, "0.1000")
    import_fixture_payments(placed)
    summary = payments.recovery_summary(
        session=placed, actor=finance, batch_id=batch_id, up_to=date(2024, 12, 2)
    )
    assert summary.payment_count == 3
    assert summary.recovered == Decimal("324144.84")


def test_report_workbook_is_xlsx(placed):
    report = import_fixture_payments(placed)
    data = payments.report_workbook(report, "zh-CN")
    assert data[:2] == b"PK"
