"""Audit log for auditors and admins: search by case, user, action and date, read
the values before and after each change, and export the result."""

import json
from datetime import date

import polars as pl
import streamlit as st

from recova import ui
from recova.i18n import format_moment
from services import audit_log
from services.files.export import write_xlsx

actor = ui.require_actor()
t = ui.t
lang = ui.language()
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ANY = ""

st.title(t("audit.title"))

with ui.db_session() as session:
    actions = audit_log.list_actions(session=session, actor=actor)
    creditors = audit_log.list_creditors(session=session, actor=actor)

top = st.columns(3)
case_no = top[0].text_input(t("audit.case_no"), key="audit_case_no")
creditor_names = {c.id: c.name for c in creditors}
creditor_id = top[1].selectbox(
    t("cases.creditor"),
    [None, *creditor_names],
    format_func=lambda key: t("cases.all") if key is None else creditor_names[key],
    key="audit_creditor",
)
username = top[2].text_input(t("audit.user"), key="audit_user")
bottom = st.columns(4)
action = bottom[0].selectbox(
    t("audit.action"),
    [ANY, *actions],
    format_func=lambda value: t("cases.all") if value == ANY else value,
    key="audit_action",
)
date_from = bottom[1].date_input(t("audit.date_from"), value=None, key="audit_from")
date_to = bottom[2].date_input(t("audit.date_to"), value=None, key="audit_to")
page = bottom[3].number_input(
    t("cases.page"), min_value=1, value=1, step=1, key="audit_page"
)

query = audit_log.AuditQuery(
    case_no=case_no or None,
    creditor_id=creditor_id,
    username=username or None,
    action=action or None,
    date_from=date_from,
    date_to=date_to,
    page=int(page),
)
found = ui.call(audit_log.search, actor=actor, query=query)
if found is None:
    st.stop()
rows, more = found


def _json(value) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _frame(entries: list[dict], *, for_export: bool) -> pl.DataFrame:
    at = (
        [entry["at"] for entry in entries]
        if for_export
        else [format_moment(entry["at"], lang, actor.timezone) for entry in entries]
    )
    return pl.DataFrame(
        {
            t("audit.id"): [entry["id"] for entry in entries],
            t("audit.at"): at,
            t("audit.user"): [entry["user"] for entry in entries],
            t("audit.action"): [entry["action"] for entry in entries],
            t("audit.entity"): [entry["entity"] for entry in entries],
            t("audit.entity_id"): [entry["entity_id"] for entry in entries],
            t("audit.before"): [_json(entry["before"]) for entry in entries],
            t("audit.after"): [_json(entry["after"]) for entry in entries],
            t("audit.detail"): [_json(entry["detail"]) for entry in entries],
        }
    )


st.caption(t("audit.count", count=len(rows), page=int(page), more="+" if more else ""))
if not rows:
    st.info(t("audit.empty"))
else:
    selection = st.dataframe(
        _frame(rows, for_export=False),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="audit_table",
    )
    picked = selection.selection.rows if selection else []
    if picked:
        entry = rows[picked[0]]
        st.subheader(t("audit.entry", id=entry["id"], action=entry["action"]))
        left, right = st.columns(2)
        left.markdown(f"**{t('audit.before')}**")
        left.json(entry["before"] or {})
        right.markdown(f"**{t('audit.after')}**")
        right.json(entry["after"] or {})
        if entry["detail"]:
            st.markdown(f"**{t('audit.detail')}**")
            st.json(entry["detail"])

if st.button(t("audit.prepare_export"), key="audit_export", icon=":material/download:"):
    exported = ui.call(audit_log.export_entries, actor=actor, query=query)
    if exported is not None:
        st.session_state["audit_export_file"] = write_xlsx(
            {t("audit.title"): _frame(exported, for_export=True)}
        )
        st.session_state["audit_export_count"] = len(exported)
prepared = st.session_state.get("audit_export_file")
if prepared is not None:
    st.download_button(
        t("audit.download", count=st.session_state.get("audit_export_count", 0)),
        data=prepared,
        file_name=f"audit-log-{date.today().isoformat()}.xlsx",
        mime=XLSX_MIME,
        key="audit_download",
        icon=":material/download:",
    )
