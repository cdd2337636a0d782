"""Case list with filters and search, and the view of one case."""

import json

import polars as pl
import streamlit as st

from db.models import CASE_STATUSES
from recova import ui
from recova.i18n import format_day, format_money
from services import cases, intake
from services.files.export import write_xlsx

actor = ui.require_actor()
t = ui.t
lang = ui.language()
BUCKETS = ["M1", "M2", "M3", "M4", "M5", "M6", "M7+"]
ANY = "__any__"

st.title(t("cases.title"))

with ui.db_session() as session:
    creditors = cases.list_creditors(session=session, actor=actor)
    provinces = cases.list_provinces(session=session, actor=actor)
    batches = (
        intake.list_batches(session=session, actor=actor)
        if actor.role not in ("collector",)
        else []
    )

search = st.text_input(
    t("cases.search"), key="cases_search", placeholder=t("cases.search_hint")
)
columns = st.columns(5)
creditor_id = columns[0].selectbox(
    t("cases.creditor"),
    [None, *[c.id for c in creditors]],
    format_func=lambda cid: (
        t("cases.all")
        if cid is None
        else next(c.name for c in creditors if c.id == cid)
    ),
    key="cases_creditor",
)
batch_options = [b for b in batches if creditor_id in (None, b.creditor_id)]
batch_id = columns[1].selectbox(
    t("cases.batch"),
    [None, *[b.id for b in batch_options]],
    format_func=lambda bid: (
        t("cases.all")
        if bid is None
        else next(b.name for b in batch_options if b.id == bid)
    ),
    key="cases_batch",
)
status = columns[2].selectbox(
    t("cases.status"),
    [None, *CASE_STATUSES],
    format_func=lambda value: t("cases.all") if value is None else t(f"status.{value}"),
    key="cases_status",
)
bucket = columns[3].selectbox(
    t("cases.bucket"),
    [None, *BUCKETS],
    format_func=lambda value: t("cases.all") if value is None else value,
    key="cases_bucket",
)
province = columns[4].selectbox(
    t("cases.province"),
    [None, *provinces],
    format_func=lambda value: t("cases.all") if value is None else value,
    key="cases_province",
)
page_number = st.number_input(
    t("cases.page"), min_value=1, value=1, step=1, key="cases_page"
)

filters = cases.CaseFilter(
    creditor_id=creditor_id,
    batch_id=batch_id,
    status=status,
    bucket=bucket,
    province=province,
    search=search or None,
    page=int(page_number),
)
result = ui.call(cases.list_cases, actor=actor, filters=filters)
if result is None:
    st.stop()

shown_total = f"{result.total:,}" + ("+" if result.total_capped else "")
st.caption(t("cases.count", total=shown_total, page=int(page_number)))
if not result.rows:
    st.info(t("cases.empty"))
    st.stop()

frame = pl.DataFrame(result.rows, infer_schema_length=None)
display = frame.select(
    pl.col("case_no").alias(t("field.case_no")),
    pl.col("creditor").alias(t("cases.creditor")),
    pl.col("name").alias(t("field.name")),
    pl.col("phone").alias(t("field.phone")),
    pl.col("province").alias(t("field.province")),
    pl.col("total_due")
    .map_elements(lambda v: format_money(v, lang), return_dtype=pl.Utf8)
    .alias(t("field.total_due")),
    pl.col("balance")
    .map_elements(lambda v: format_money(v, lang), return_dtype=pl.Utf8)
    .alias(t("cases.balance")),
    pl.col("bucket").alias(t("cases.bucket")),
    pl.col("status")
    .map_elements(lambda v: t(f"status.{v}"), return_dtype=pl.Utf8)
    .alias(t("cases.status")),
    pl.col("collector").alias(t("cases.collector")),
)
selection = st.dataframe(
    display,
    hide_index=True,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key="cases_table",
)
st.download_button(
    t("cases.download"),
    data=write_xlsx({t("cases.title"): display}),
    file_name="cases.xlsx",
    mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    icon=":material/download:",
    key="cases_download",
)

picked = selection.selection.rows if selection else []
if not picked:
    st.caption(t("cases.pick"))
    st.stop()

view = ui.call(cases.get_case, actor=actor, case_id=int(frame["id"][picked[0]]))
if view is None:
    st.stop()

st.divider()
st.subheader(t("cases.case_title", case_no=view.case_no, name=view.name or ""))
if actor.role != "finance" and st.button(
    t("case_file.open_full"), key="cases_open_file", icon=":material/badge:"
):
    st.session_state["case_file_id"] = view.id
    st.switch_page("pages/case_file.py", query_params={"case": str(view.id)})
if view.masked:
    st.caption(t("cases.masked"))
left, middle, right = st.columns(3)
with left:
    st.markdown(f"**{t('cases.debtor')}**")
    st.write(t("field.name"), view.name or "—")
    st.write(t("field.id_number"), view.id_number or "—")
    st.write(t("field.phone"), ", ".join(view.phones) or "—")
    st.write(t("field.province"), view.province or "—", view.city or "")
    st.write(t("field.customer_type"), t(f"customer.{view.customer_type}"))
    st.write(t("field.address"), view.address or "—")
with middle:
    st.markdown(f"**{t('cases.contract')}**")
    st.write(t("field.product"), view.product or "—")
    st.write(t("field.contract_no"), view.contract_no or "—")
    for key in ("principal", "interest", "fees", "total_due"):
        st.write(t(f"field.{key}"), format_money(getattr(view, key), lang) or "—")
    st.write(t("cases.balance"), format_money(view.balance, lang))
with right:
    st.markdown(f"**{t('cases.status')}**")
    st.write(t("cases.status"), t(f"status.{view.status}"))
    st.write(t("field.overdue_since"), format_day(view.overdue_since, lang))
    st.write(t("field.dpd_at_placement"), str(view.dpd_at_placement))
    st.write(t("cases.bucket"), view.bucket or "—")
    st.write(t("field.placement_date"), format_day(view.placement_date, lang))
    st.write(t("field.recall_date"), format_day(view.recall_date, lang) or "—")
    st.write(t("cases.batch"), view.batch)
    st.write(t("cases.collector"), view.collector or "—")

if view.note:
    st.markdown(f"**{t('field.note')}**")
    st.text(view.note)
if view.contacts:
    st.markdown(f"**{t('cases.contacts')}**")
    st.dataframe(pl.DataFrame(view.contacts), hide_index=True)
st.markdown(f"**{t('cases.extra')}**")
if view.extra:
    st.code(json.dumps(view.extra, ensure_ascii=False, indent=2), language="json")
else:
    st.write(t("intake.none"))


# ---------------------------------------------------------------------------------
# Settlement and write-off requests on this case: the case's requests, and the
# request form for its collector or team lead.
# ---------------------------------------------------------------------------------


def _approval_requests_section(view) -> None:
    from decimal import Decimal

    from db.models import OPEN_STATUSES
    from recova.errors import RecovaError
    from services import approvals
    from services.users import validated

    st.divider()
    st.subheader(t("requests.title"))
    existing = ui.call(approvals.list_case_requests, actor=actor, case_id=view.id)
    if existing:
        st.dataframe(
            pl.DataFrame(
                {
                    t("approvals.kind"): [
                        t(f"approvals.kind.{row['kind']}") for row in existing
                    ],
                    t("approvals.amount"): [
                        format_money(row["amount"], lang) for row in existing
                    ],
                    t("approvals.status"): [
                        t(f"approvals.status.{row['status']}") for row in existing
                    ],
                    t("approvals.requested_by"): [
                        row["requested_by"] for row in existing
                    ],
                    t("approvals.reason"): [row["reason"] for row in existing],
                }
            ),
            hide_index=True,
            key="case_requests_table",
        )
    if actor.role not in approvals.REQUESTER_ROLES:
        return
    if view.status not in OPEN_STATUSES:
        st.caption(t("requests.closed_case"))
        return

    with st.form(f"approval_request_{view.id}", clear_on_submit=True):
        kind = st.radio(
            t("approvals.kind"),
            ["settlement", "write_off"],
            format_func=lambda value: t(f"approvals.kind.{value}"),
            horizontal=True,
            key="request_kind",
        )
        basis = st.radio(
            t("requests.basis"),
            ["amount", "new_balance"],
            format_func=lambda value: t(f"requests.basis.{value}"),
            horizontal=True,
            key="request_basis",
            help=t("requests.basis_help"),
        )
        figure = st.text_input(
            t("requests.figure"),
            key="request_figure",
            help=t("requests.figure_help", balance=format_money(view.balance, lang)),
        )
        reason = st.text_area(t("approvals.reason"), key="request_reason")
        evidence = st.text_input(t("approvals.evidence"), key="request_evidence")
        evidence_file = st.file_uploader(
            t("payments.evidence_file"), key="request_evidence_file"
        )
        submitted = st.form_submit_button(t("requests.submit"), type="primary")
    if not submitted:
        return

    figure_text = figure.replace(",", "").strip() or None
    values = {
        "case_id": view.id,
        "kind": kind,
        "reason": reason,
        "evidence": evidence or None,
    }
    if kind == "write_off":
        values["amount"] = figure_text or Decimal(view.balance)
    else:
        values["amount" if basis == "amount" else "new_balance"] = figure_text
    attachment = None
    if evidence_file is not None:
        attachment = (evidence_file.name, evidence_file.getvalue())
    try:
        data = validated(approvals.NewRequest, **values)
    except RecovaError as error:
        ui.show_error(error)
        return
    request = ui.call(
        approvals.request_approval, actor=actor, data=data, evidence_file=attachment
    )
    if request is not None:
        st.success(
            t(
                "requests.filed",
                id=request.id,
                level=t(f"approvals.level.{request.next_level}"),
            )
        )


_approval_requests_section(view)
