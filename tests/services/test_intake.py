"""Case intake into the database, checked against the fixtures' expected results."""

import json
import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import AuditEntry, Batch, BatchFile, Case, Contact, Creditor, Debtor
from recova.errors import InvalidInput, PermissionDenied
from services import cases, intake
from services.actors import Actor
from tests.conftest import FIXTURES
from tests.factories import make_user

EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
CASE_FILES = ["cases_zh_gbk.csv", "cases_zh.xlsx", "cases_en.csv"]


def run_import(session, name, *, creditor="Test Bank", actor=None, **options):
    # No placement date is given, so the xlsx's own 委案日期 column decides its dates.
    request = intake.ImportRequest(creditor=creditor, **options)
    return intake.import_cases(
        session=session,
        actor=actor or Actor.operator(),
        request=request,
        content=(FIXTURES / name).read_bytes(),
        filename=name,
    )


@pytest.mark.parametrize("name", CASE_FILES)
def test_fixture_counts_match(session, name):
    expected = EXPECTED[name]
    report = run_import(session, name)
    assert report.data_rows == expected["data_rows"]
    assert report.imported == expected["imported"]
    assert (
        sorted(issue["row"] for issue in report.rejected) == expected["rejected_rows"]
    )
    assert sorted(issue["row"] for issue in report.warnings) == expected.get(
        "warning_rows", []
    )
    assert report.total_due_imported == Decimal(expected["total_due_imported"])


@pytest.mark.parametrize("name", CASE_FILES)
def test_fixture_totals_in_database(session, name):
    expected = EXPECTED[name]
    report = run_import(session, name)
    stored = session.scalar(
        select(func.sum(Case.total_due)).where(Case.batch_id == report.batch_id)
    )
    balance = session.scalar(
        select(func.sum(Case.balance)).where(Case.batch_id == report.batch_id)
    )
    assert stored == Decimal(expected["total_due_imported"])
    assert balance == stored


@pytest.mark.parametrize("name", CASE_FILES)
def test_fixture_spot_checks(session, name):
    run_import(session, name)
    for case_no, fields in EXPECTED[name]["spot_checks"].items():
        view = cases.find_case(
            session=session,
            actor=Actor.operator(),
            creditor="Test Bank",
            case_no=case_no,
        ).as_json()
        for field, value in fields.items():
            if field == "note_kept_verbatim":
                assert view["note"] == value, case_no
            elif field == "export_cell_must_not_start_with":
                continue
            else:
                assert view[field] == value, (case_no, field)


def test_rejection_codes_gbk(session):
    report = run_import(session, "cases_zh_gbk.csv")
    codes = {issue["row"]: issue["code"] for issue in report.rejected}
    assert codes == {
        9: "total_due_missing",
        11: "total_due_not_positive",
        13: "case_no_duplicate",
        19: "overdue_missing",
    }
    duplicate = next(issue for issue in report.rejected if issue["row"] == 13)
    assert "4" in duplicate["message"]


def test_warning_codes_gbk(session):
    report = run_import(session, "cases_zh_gbk.csv")
    codes = {issue["row"]: issue["code"] for issue in report.warnings}
    assert codes == {15: "id_number_checksum", 17: "phone_invalid"}


def test_lost_digits_message_says_reexport(session):
    english = Actor(id=None, username="cli", role="admin", language="en")
    report = run_import(session, "cases_zh.xlsx", actor=english)
    lost = next(issue for issue in report.rejected if issue["row"] == 7)
    assert lost["code"] == "id_number_lost_digits"
    assert "as text" in lost["fix"]
    assert "Re-export" in lost["fix"]


def test_extra_columns_kept(session):
    run_import(session, "cases_zh_gbk.csv")
    extras = session.scalars(select(Case.extra)).all()
    for column in EXPECTED["cases_zh_gbk.csv"]["extra_columns_kept"]:
        assert all(column in extra for extra in extras)


def test_xlsx_batch_dates(session):
    report = run_import(session, "cases_zh.xlsx")
    batch = session.get(Batch, report.batch_id)
    assert (
        batch.placement_date.isoformat() == EXPECTED["cases_zh.xlsx"]["placement_date"]
    )
    assert batch.recall_date.isoformat() == EXPECTED["cases_zh.xlsx"]["recall_date"]


@pytest.mark.parametrize("name", CASE_FILES)
def test_second_import_adds_nothing(session, name):
    first = run_import(session, name)
    second = run_import(session, name)
    assert second.imported == 0
    assert len(second.skipped_existing) == first.imported
    assert session.scalar(select(func.count()).select_from(Case)) == first.imported


def test_reimport_creates_no_batch(session):
    run_import(session, "cases_en.csv")
    again = run_import(session, "cases_en.csv")
    assert again.batch_id is None
    assert again.refusal == "nothing_new"
    assert session.scalar(select(func.count()).select_from(Batch)) == 1
    assert session.scalar(select(func.count()).select_from(BatchFile)) == 1


def test_original_file_stored(session):
    report = run_import(session, "cases_zh.xlsx")
    stored = session.get(BatchFile, report.batch_id)
    assert stored.content == (FIXTURES / "cases_zh.xlsx").read_bytes()


def test_import_audited(session):
    report = run_import(session, "cases_en.csv")
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "cases_imported")
    ).one()
    assert entry.entity_id == str(report.batch_id)
    assert entry.after["cases"] == report.imported


def test_debtors_and_contacts_created(session):
    report = run_import(session, "cases_zh_gbk.csv")
    assert session.scalar(select(func.count()).select_from(Debtor)) == report.imported
    assert session.scalar(select(func.count()).select_from(Contact)) == report.imported


def test_debtor_shared_across_cases(session):
    header = "案件编号,姓名,身份证号,欠款总额,逾期天数\n"
    rows = (
        "A1,张三,11010519491231002X,100.00,10\nA2,张三,11010519491231002X,200.00,40\n"
    )
    request = intake.ImportRequest(creditor="Shared")
    intake.import_cases(
        session=session,
        actor=Actor.operator(),
        request=request,
        content=(header + rows).encode(),
        filename="shared.csv",
    )
    assert session.scalar(select(func.count()).select_from(Debtor)) == 1
    assert session.scalar(select(func.count()).select_from(Case)) == 2


def test_all_or_nothing_imports_nothing(session):
    report = run_import(session, "cases_zh_gbk.csv", mode="all-or-nothing")
    assert report.refused
    assert report.batch_id is None
    assert session.scalar(select(func.count()).select_from(Case)) == 0
    assert session.scalar(select(func.count()).select_from(Batch)) == 0


def test_all_or_nothing_clean_file_imports(session):
    content = "Acct #,Name,Balance Due,DPD\nX-1,Ann,10.00,5\nX-2,Bob,20.00,50\n"
    report = intake.import_cases(
        session=session,
        actor=Actor.operator(),
        request=intake.ImportRequest(creditor="Clean", mode="all-or-nothing"),
        content=content.encode(),
        filename="clean.csv",
    )
    assert not report.refused
    assert report.imported == 2


@pytest.mark.parametrize(
    ("content", "filename", "code"),
    [
        (b"", "empty.csv", "file.file_empty"),
        ("案件编号,欠款总额,逾期天数\n".encode(), "header.csv", "file.no_data_rows"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image.csv", "file.not_a_table"),
        (b"", "zero.xlsx", "file.corrupt_workbook"),
        (b"colour,shape\nred,round\n", "other.csv", "file.no_header"),
    ],
)
def test_bad_files_refused_whole(session, content, filename, code):
    with pytest.raises(InvalidInput) as raised:
        intake.import_cases(
            session=session,
            actor=Actor.operator(),
            request=intake.ImportRequest(creditor="Bad"),
            content=content,
            filename=filename,
        )
    assert raised.value.code == code
    assert session.scalar(select(func.count()).select_from(Batch)) == 0


def test_file_over_limit_refused(session, monkeypatch):
    monkeypatch.setenv("RECOVA_UPLOAD_LIMIT_MB", "1")
    from recova.settings import get_settings

    get_settings.cache_clear()
    try:
        with pytest.raises(InvalidInput) as raised:
            intake.import_cases(
                session=session,
                actor=Actor.operator(),
                request=intake.ImportRequest(creditor="Big"),
                content=b"a" * (2 * 2**20),
                filename="big.csv",
            )
        assert raised.value.code == "file_too_large"
    finally:
        monkeypatch.delenv("RECOVA_UPLOAD_LIMIT_MB")
        get_settings.cache_clear()


def test_collector_cannot_import(session):
    collector = make_user(session, "ann")
    with pytest.raises(PermissionDenied):
        run_import(session, "cases_en.csv", actor=collector)


def test_failed_import_leaves_nothing(session, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("crash in the middle of the batch")

    monkeypatch.setattr(intake, "_insert_cases", explode)
    with pytest.raises(RuntimeError):
        run_import(session, "cases_zh_gbk.csv")
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Batch)) == 0
    assert session.scalar(select(func.count()).select_from(Debtor)) == 0
    assert session.scalar(select(func.count()).select_from(Creditor)) == 0


def test_same_file_twice_at_once(engine):
    content = (FIXTURES / "cases_zh_gbk.csv").read_bytes()
    reports, errors = [], []
    start = threading.Barrier(2)

    def worker():
        with Session(engine) as own:
            start.wait()
            try:
                reports.append(
                    intake.import_cases(
                        session=own,
                        actor=Actor.operator(),
                        request=intake.ImportRequest(creditor="Twice"),
                        content=content,
                        filename="cases_zh_gbk.csv",
                    )
                )
            except Exception as error:  # noqa: BLE001 - collected for the assert
                errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    imported = sorted(report.imported for report in reports)
    assert imported == [0, EXPECTED["cases_zh_gbk.csv"]["imported"]]
    with Session(engine) as check:
        assert check.scalar(select(func.count()).select_from(Case)) == imported[1]


def test_mapping_saved_for_creditor(session):
    content = b"Ref,Client,Owed,Late days\nR-1,Ann,10.00,5\n"
    actor = Actor.operator()
    mapping = {
        "Ref": "case_no",
        "Client": "name",
        "Owed": "total_due",
        "Late days": "dpd_at_placement",
    }
    report = intake.import_cases(
        session=session,
        actor=actor,
        request=intake.ImportRequest(
            creditor="Odd Bank", mapping=mapping, save_mapping=True
        ),
        content=content,
        filename="odd.csv",
    )
    assert report.imported == 1
    again = b"Ref,Client,Owed,Late days\nR-2,Bob,20.00,7\n"
    preview = intake.preview_cases(
        session=session,
        actor=actor,
        creditor="Odd Bank",
        content=again,
        filename="odd2.csv",
    )
    assert preview.saved_mapping_used
    assert preview.parsed.cases.height == 1


def test_report_workbook_opens(session):
    import io

    import openpyxl

    report = run_import(session, "cases_zh_gbk.csv")
    book = openpyxl.load_workbook(io.BytesIO(intake.report_workbook(report, "zh-CN")))
    assert len(book.sheetnames) == 4
    rejected = book.worksheets[1]
    assert rejected.max_row == 1 + len(report.rejected)


def test_second_file_reuses_debtor_adds_contact(session):
    header = "案件编号,姓名,身份证号,欠款总额,逾期天数,联系人,联系人电话\n"
    first = "B1,张三,11010519491231002X,100.00,10,李四,13800138000\n"
    second = (
        "B2,张三,11010519491231002X,200.00,40,李四,13800138000\n"
        "B3,张三,11010519491231002X,300.00,70,王五,13900139000\n"
    )
    for name, rows in (("first.csv", first), ("second.csv", second)):
        intake.import_cases(
            session=session,
            actor=Actor.operator(),
            request=intake.ImportRequest(creditor="Repeat"),
            content=(header + rows).encode(),
            filename=name,
        )
    assert session.scalar(select(func.count()).select_from(Debtor)) == 1
    assert session.scalar(select(func.count()).select_from(Case)) == 3
    phones = sorted(session.scalars(select(Contact.phone)).all())
    assert phones == ["13800138000", "13900139000"]


@pytest.mark.parametrize("name", CASE_FILES)
def test_segments_match_sql_classification(session, name):
    from services import segments

    report = run_import(session, name)
    written = session.execute(
        select(Case.case_no, Case.segment, Case.strategy).where(
            Case.batch_id == report.batch_id
        )
    ).all()
    assert all(segment is not None for _, segment, _ in written)
    result = segments.classify(session, batch_id=report.batch_id)
    assert result.changed == 0


def test_custom_rules_match_sql_classification(session):
    from services import segments

    rules = [
        {
            "segment": "heavy",
            "strategy": "heavy",
            "match": "any",
            "conditions": [
                {"field": "province", "op": "in", "value": ["广东省", "上海市"]},
                {"field": "dpd", "op": "gt", "value": "100"},
            ],
        },
        {
            "segment": "light",
            "strategy": "light",
            "conditions": [
                {"field": "product", "op": "not_in", "value": ["信用卡"]},
                {"field": "bucket", "op": "in", "value": ["M1", "M2", "M3"]},
            ],
        },
        {"segment": "standard", "strategy": "standard", "conditions": []},
    ]
    segments.save_rule_set(
        session=session, actor=Actor.operator(), data=segments.RuleSetInput(rules=rules)
    )
    report = run_import(session, "cases_zh_gbk.csv")
    counts = dict(
        session.execute(select(Case.segment, func.count()).group_by(Case.segment)).all()
    )
    assert set(counts) <= {"heavy", "light", "standard"}
    assert counts.get("heavy", 0) > 0
    assert segments.classify(session, batch_id=report.batch_id).changed == 0


def test_preview_without_case_number_keeps_mapping(session):
    content = "Ref,姓名,委案金额,逾期天数\nR-1,张三,10.00,5\n".encode()
    preview = intake.preview_cases(
        session=session,
        actor=Actor.operator(),
        creditor="Gap Bank",
        content=content,
        filename="gap.csv",
    )
    assert preview.parsed is None
    assert preview.missing_fields == ["case_no"]
    assert preview.unrecognised_headers == ["Ref", "姓名", "委案金额", "逾期天数"]
    assert preview.detected_mapping["委案金额"] == "total_due"
    assert preview.detected_mapping["Ref"] is None
