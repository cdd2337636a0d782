"""Payments for finance: import a payment file, work the unmatched queue, post a
payment by hand, and confirm a batch's recoveries."""

import hashlib
from datetime import date

import polars as pl
import streamlit as st

from recova import ui
from recova.errors import RecovaError
from recova.i18n import format_money
from services import cases, intake, payments
from services.users import validated

actor = ui.require_actor()
t = ui.t
lang = ui.language()
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

st.title(t("payments.title"))


def _money_column(values: list, label: str) -> pl.Series:
    return pl.Series(label, [format_money(value, lang) for value in values])


def _creditor_names() -> list[str]:
    with ui.db_session() as session:
        return [c.name for c in cases.list_creditors(session=session, actor=actor)]


# Import of a payment file.


@st.cache_data(show_spinner=False, max_entries=4)
def _preview(_content: bytes, digest: str, filename: str):
    # Cached per file, so a rerun does not parse the file again.
    with ui.db_session() as session:
        return payments.preview_payments(
            session=session, actor=actor, content=_content, filename=filename
        )


def _show_preview(parsed) -> None:
    facts = [t("intake.format", format=parsed.format)]
    if parsed.encoding:
        facts.append(t("intake.encoding", encoding=parsed.encoding))
    if parsed.sheet:
        facts.append(t("intake.sheet", sheet=parsed.sheet))
    facts.append(t("intake.header_row", row=parsed.header_row))
    facts.append(t("intake.data_rows", count=parsed.data_rows))
    st.write(" · ".join(facts))
    mapped = {
        header: t(f"payments.field.{field}") if field else t("payments.field.ignored")
        for header, field in parsed.mapping.items()
    }
    st.dataframe(
        pl.DataFrame(
            {
                t("intake.source_column"): list(mapped),
                t("intake.field"): list(mapped.values()),
            }
        ),
        hide_index=True,
        key="payments_mapping",
    )
    st.write(
        t(
            "payments.preview_counts",
            valid=parsed.payments.height,
            rejected=len(parsed.rejected),
            repeated=len(parsed.repeated),
        )
    )
    with st.expander(t("payments.preview_rows", count=min(parsed.payments.height, 20))):
        st.dataframe(parsed.payments.head(20), hide_index=True)


def _show_report(report) -> None:
    st.subheader(t("payments.report"))
    st.success(t("payments.done", posted=report.posted, import_id=report.import_id))
    columns = st.columns(5)
    columns[0].metric(t("payments.metric.posted"), report.posted)
    columns[1].metric(t("payments.metric.unmatched"), len(report.unmatched))
    columns[2].metric(t("payments.metric.duplicates"), len(report.duplicates_skipped))
    columns[3].metric(t("payments.metric.rejected"), len(report.rejected))
    columns[4].metric(
        t("payments.metric.recovered"), format_money(report.recovered_total, lang)
    )
    for issue in report.file_issues:
        st.warning(issue["message"])

    tabs = st.tabs(
        [
            t("payments.tab.rejected"),
            t("payments.tab.duplicates"),
            t("payments.tab.unmatched"),
            t("payments.tab.closed"),
        ]
    )
    with tabs[0]:
        _issue_table(report.rejected, ["row", "column", "value", "message", "fix"])
    with tabs[1]:
        rows = [
            {**item, "reason": t(f"payments.repeat.{item['reason']}")}
            for item in report.duplicates_skipped
        ]
        _issue_table(rows, ["row", "transaction", "reason"])
    with tabs[2]:
        _issue_table([{"transaction": tx} for tx in report.unmatched], ["transaction"])
    with tabs[3]:
        closed = [
            {"case_no": case_no, "result": t("status.paid")}
            for case_no in report.paid_in_full
        ] + [
            {"case_no": case_no, "result": t("status.settled")}
            for case_no in report.settled
        ]
        _issue_table(closed, ["case_no", "result"])
        if report.overpaid:
            st.markdown(f"**{t('payments.overpaid')}**")
            st.dataframe(
                pl.DataFrame(
                    {
                        t("payments.report.case_no"): list(report.overpaid),
                        t("payments.report.amount"): [
                            format_money(amount, lang)
                            for amount in report.overpaid.values()
                        ],
                    }
                ),
                hide_index=True,
            )

    st.download_button(
        t("payments.download_report"),
        data=payments.report_workbook(report, lang),
        file_name=f"payment-report-{report.import_id}.xlsx",
        mime=XLSX_MIME,
        key="payments_download",
        icon=":material/download:",
    )


def _issue_table(rows: list[dict], columns: list[str]) -> None:
    if not rows:
        st.write(t("intake.none"))
        return
    frame = pl.DataFrame(
        [{key: row.get(key) for key in columns} for row in rows],
        infer_schema_length=None,
    )
    labels = {key: t(f"payments.report.{key}") for key in columns}
    st.dataframe(frame.rename(labels), hide_index=True, width="stretch")


def import_tab() -> None:
    names = _creditor_names()
    if not names:
        st.info(t("payments.no_creditors"))
        return
    creditor = st.selectbox(t("intake.creditor"), names, key="payments_creditor")
    upload = st.file_uploader(
        t("payments.file"),
        type=["csv", "txt", "tsv", "xlsx", "xls"],
        key="payments_file",
        help=t("payments.file_help"),
    )
    if upload is None:
        return

    content = upload.getvalue()
    digest = hashlib.sha256(content).hexdigest()
    try:
        with st.spinner(t("intake.reading")):
            parsed = _preview(content, digest, upload.name)
    except RecovaError as error:
        ui.show_error(error)
        return
    _show_preview(parsed)

    # A finished report is kept, so a second click does not import again.
    report_key = f"payments_report:{digest}:{creditor}"
    clicked = st.button(
        t("payments.import"),
        type="primary",
        key="payments_import",
        disabled=report_key in st.session_state,
    )
    if clicked:
        bar = st.progress(0.0, text=t("payments.stage.parse"))

        def _progress(fraction: float, stage: str) -> None:
            bar.progress(min(fraction, 1.0), text=t(f"payments.stage.{stage}"))

        report = ui.call(
            payments.import_payments,
            actor=actor,
            request=payments.PaymentImportRequest(creditor=creditor),
            content=content,
            filename=upload.name,
            progress=_progress,
        )
        if report is not None:
            st.session_state[report_key] = report
            # Draw the page again, with the import button disabled.
            st.rerun()
    report = st.session_state.get(report_key)
    if report is not None:
        st.divider()
        _show_report(report)


# The unmatched queue.


def unmatched_tab() -> None:
    rows = ui.call(payments.list_unmatched, actor=actor) or []
    if not rows:
        st.info(t("payments.unmatched_empty"))
        return
    frame = pl.DataFrame(
        {
            t("payments.report.creditor"): [row["creditor"] for row in rows],
            t("payments.report.transaction"): [row["transaction_id"] for row in rows],
            t("payments.field.case_no"): [row["case_no"] for row in rows],
            t("payments.field.id_number"): [row["id_number"] for row in rows],
            t("payments.field.name"): [row["name"] for row in rows],
        }
    ).with_columns(
        _money_column([row["amount"] for row in rows], t("payments.field.amount")),
        pl.Series(t("payments.field.paid_on"), [row["paid_on"] for row in rows]),
        pl.Series(
            t("payments.report.reason"),
            [t(f"payments.unmatched.{row['reason']}") for row in rows],
        ),
    )
    st.dataframe(frame, hide_index=True, width="stretch", key="unmatched_table")

    by_id = {row["id"]: row for row in rows}
    with st.form("unmatched_match", clear_on_submit=True):
        chosen = st.selectbox(
            t("payments.unmatched_pick"),
            list(by_id),
            format_func=lambda key: t(
                "payments.unmatched_option",
                transaction=by_id[key]["transaction_id"],
                amount=format_money(by_id[key]["amount"], lang),
                creditor=by_id[key]["creditor"],
            ),
            key="unmatched_pick",
        )
        case_no = st.text_input(t("payments.field.case_no"), key="unmatched_case_no")
        evidence = st.text_area(
            t("payments.evidence"),
            key="unmatched_evidence",
            help=t("payments.evidence_help"),
        )
        submitted = st.form_submit_button(t("payments.match"), type="primary")
    if submitted:
        try:
            data = validated(
                payments.UnmatchedMatch,
                unmatched_id=chosen,
                case_no=case_no,
                evidence=evidence,
            )
        except RecovaError as error:
            ui.show_error(error)
            return
        payment = ui.call(payments.match_unmatched, actor=actor, data=data)
        if payment is not None:
            st.success(
                t(
                    "payments.matched",
                    transaction=payment.transaction_id,
                    case_no=case_no,
                )
            )


# Manual posting.


def manual_tab() -> None:
    names = _creditor_names()
    if not names:
        st.info(t("payments.no_creditors"))
        return
    with st.form("manual_payment", clear_on_submit=False):
        left, right = st.columns(2)
        creditor = left.selectbox(t("intake.creditor"), names, key="manual_creditor")
        case_no = left.text_input(t("payments.field.case_no"), key="manual_case_no")
        transaction = left.text_input(
            t("payments.field.transaction_id"), key="manual_transaction"
        )
        amount = right.text_input(
            t("payments.field.amount"), key="manual_amount", placeholder="1234.56"
        )
        paid_on = right.date_input(
            t("payments.field.paid_on"), value=date.today(), key="manual_paid_on"
        )
        channel = right.text_input(t("payments.field.channel"), key="manual_channel")
        evidence = st.text_area(
            t("payments.evidence"),
            key="manual_evidence",
            help=t("payments.evidence_help"),
        )
        evidence_file = st.file_uploader(
            t("payments.evidence_file"), key="manual_evidence_file"
        )
        submitted = st.form_submit_button(t("payments.post"), type="primary")
    if not submitted:
        return
    try:
        data = validated(
            payments.ManualPayment,
            creditor=creditor,
            case_no=case_no,
            transaction_id=transaction,
            amount=amount.replace(",", "").strip(),
            paid_on=paid_on,
            channel=channel or None,
            evidence=evidence,
        )
    except RecovaError as error:
        ui.show_error(error)
        return
    attachment = None
    if evidence_file is not None:
        attachment = (evidence_file.name, evidence_file.getvalue())
    payment = ui.call(
        payments.post_payment, actor=actor, data=data, evidence_file=attachment
    )
    if payment is not None:
        st.success(
            t("payments.posted", transaction=payment.transaction_id, case_no=case_no)
        )


# Recovery confirmation.


def confirm_tab() -> None:
    with ui.db_session() as session:
        batches = intake.list_batches(session=session, actor=actor)
    if not batches:
        st.info(t("payments.no_batches"))
        return
    by_id = {batch.id: batch for batch in batches}
    left, right = st.columns(2)
    batch_id = left.selectbox(
        t("payments.batch"),
        list(by_id),
        format_func=lambda key: f"{by_id[key].creditor.name} · {by_id[key].name}",
        key="confirm_batch",
    )
    up_to = right.date_input(
        t("payments.up_to"), value=date.today(), key="confirm_up_to"
    )
    summary = ui.call(
        payments.recovery_summary, actor=actor, batch_id=batch_id, up_to=up_to
    )
    if summary is None:
        return

    rate = (
        f"{summary.commission_rate * 100:.2f}%"
        if summary.commission_rate is not None
        else t("payments.no_rate")
    )
    st.write(
        t(
            "payments.summary",
            count=summary.payment_count,
            recovered=format_money(summary.recovered, lang),
            rate=rate,
        )
    )
    if summary.lines:
        st.dataframe(
            pl.DataFrame(
                {
                    t("payments.collector"): [
                        line["collector"] or t("payments.unassigned")
                        for line in summary.lines
                    ],
                    t("payments.payment_count"): [
                        line["payments"] for line in summary.lines
                    ],
                    t("payments.recovered"): [
                        format_money(line["recovered"], lang) for line in summary.lines
                    ],
                    t("payments.commission"): [
                        format_money(line["commission"], lang) for line in summary.lines
                    ],
                }
            ),
            hide_index=True,
        )
    statement = st.text_input(t("payments.statement_ref"), key="confirm_statement")
    if st.button(
        t("payments.confirm"),
        type="primary",
        key="confirm_button",
        disabled=summary.payment_count == 0,
    ):
        confirmation = ui.call(
            payments.confirm_recoveries,
            actor=actor,
            data=payments.RecoveryConfirmationRequest(
                batch_id=batch_id, up_to=up_to, statement_ref=statement or None
            ),
        )
        if confirmation is not None:
            st.success(
                t(
                    "payments.confirmed",
                    count=confirmation.payment_count,
                    recovered=format_money(confirmation.recovered, lang),
                )
            )

    history = ui.call(payments.list_confirmations, actor=actor, batch_id=batch_id)
    if history:
        st.markdown(f"**{t('payments.confirmations')}**")
        st.dataframe(
            pl.DataFrame(
                {
                    t("payments.up_to"): [row["up_to"] for row in history],
                    t("payments.statement_ref"): [
                        row["statement_ref"] for row in history
                    ],
                    t("payments.payment_count"): [row["payments"] for row in history],
                    t("payments.recovered"): [
                        format_money(row["recovered"], lang) for row in history
                    ],
                    t("payments.commission"): [
                        format_money(row["commission"], lang) for row in history
                    ],
                    t("payments.confirmed_by"): [row["by"] for row in history],
                }
            ),
            hide_index=True,
        )


tabs = st.tabs(
    [
        t("payments.tab.import"),
        t("payments.tab.queue"),
        t("payments.tab.manual"),
        t("payments.tab.confirm"),
    ]
)
with tabs[0]:
    import_tab()
with tabs[1]:
    unmatched_tab()
with tabs[2]:
    manual_tab()
with tabs[3]:
    confirm_tab()
