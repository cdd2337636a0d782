"""My queue: counters, filters, 50 cases a page in working order, and reminders.

Select a row and press "Open case" (or Enter on the focused button) to open its case
file; "Next case" opens the top of the queue.
"""

import polars as pl
import streamlit as st

from recova import ui
from recova.errors import RecovaError
from recova.i18n import format_moment, format_money
from services import queue, reminders
from services.users import validated

actor = ui.require_actor()
t = ui.t
lang = ui.language()
BUCKETS = ["M1", "M2", "M3", "M4", "M5", "M6", "M7+"]
SEGMENTS = ["special", "heavy", "light", "standard"]
GRADES = ["A", "B", "C", "D", "E"]
DUE = ["all", "due_now", "overdue", "promises_today", "broken"]
CASE_FILE_PAGE = "pages/case_file.py"


def open_case(case_id: int) -> None:
    st.session_state["case_file_id"] = case_id
    st.switch_page(CASE_FILE_PAGE, query_params={"case": str(case_id)})


def any_of(value) -> str:
    return t("queue.any") if value is None else str(value)


st.title(t("queue.title"))
counters_slot = st.container()

# Whose queue: a collector's own; a team lead's team or one collector of it; a
# manager or admin picks the collector.
collector_id = None
if actor.role != "collector":
    people = ui.call(queue.list_queue_collectors, actor=actor) or []
    names = {p["id"]: f"{p['display_name'] or p['username']} ({p['username']})"
             for p in people}  # fmt: skip
    options = list(names)
    if actor.role == "team_lead":
        options = [None, *options]
    if not options:
        st.info(t("queue.no_collectors"))
        st.stop()
    collector_id = st.selectbox(
        t("queue.collector"),
        options,
        format_func=lambda uid: t("queue.whole_team") if uid is None else names[uid],
        key="queue_collector",
    )

with st.expander(t("queue.filters"), expanded=False):
    columns = st.columns(6)
    due = columns[0].selectbox(
        t("queue.due"), DUE, format_func=lambda v: t(f"queue.due.{v}"), key="queue_due"
    )
    bucket = columns[1].selectbox(
        t("cases.bucket"), [None, *BUCKETS], format_func=any_of, key="queue_bucket"
    )
    segment = columns[2].selectbox(
        t("queue.segment"),
        [None, *SEGMENTS],
        format_func=lambda v: t("queue.any") if v is None else t(f"segment.{v}"),
        key="queue_segment",
    )
    status = columns[3].selectbox(
        t("cases.status"),
        [None, "assigned", "in_progress", "promised", "disputed"],
        format_func=lambda v: t("queue.any") if v is None else t(f"status.{v}"),
        key="queue_status",
    )
    grade = columns[4].selectbox(
        t("queue.grade"), [None, *GRADES], format_func=any_of, key="queue_grade"
    )
    page_number = columns[5].number_input(
        t("cases.page"), min_value=1, value=1, step=1, key="queue_page"
    )
    search = st.text_input(
        t("cases.search"), key="queue_search", placeholder=t("queue.search_hint")
    )

try:
    filters = validated(
        queue.QueueFilter,
        collector_id=collector_id,
        due=due,
        bucket=bucket,
        segment=segment,
        status=status,
        grade=grade,
        search=search or None,
        page=int(page_number),
    )
except RecovaError as error:
    ui.show_error(error)
    st.stop()
result = ui.call(queue.my_queue, actor=actor, filters=filters)
if result is None:
    st.stop()

with counters_slot:
    counts = result.counters
    metric_columns = st.columns(5)
    for column, name in zip(
        metric_columns,
        ("due_now", "overdue", "promises_today", "broken", "first_contact_due"),
        strict=True,
    ):
        column.metric(t(f"queue.counter.{name}"), getattr(counts, name))

left, right = st.columns([3, 1])
with left:
    shown_total = f"{result.total:,}" + ("+" if result.total_capped else "")
    st.caption(t("queue.count", total=shown_total, page=int(page_number)))
    if not result.rows:
        st.info(t("queue.empty"))
    else:
        rows = result.rows
        table = pl.DataFrame(
            {
                t("queue.column.reason"): [
                    t(f"queue.reason.{r['reason']}") for r in rows
                ],
                t("field.case_no"): [r["case_no"] for r in rows],
                t("field.name"): [r["debtor_name"] or "" for r in rows],
                t("cases.bucket"): [r["bucket"] or "" for r in rows],
                t("queue.column.dpd"): [r["dpd"] for r in rows],
                t("cases.balance"): [format_money(r["balance"], lang) for r in rows],
                t("queue.segment"): [
                    t(f"segment.{r['segment']}") if r["segment"] else "" for r in rows
                ],
                t("queue.grade"): [r["risk_grade"] or "" for r in rows],
                t("cases.status"): [t(f"status.{r['status']}") for r in rows],
                t("queue.column.next_action"): [
                    format_moment(r["next_action_at"], lang, actor.timezone)
                    for r in rows
                ],
            }
        )
        if actor.role != "collector":
            table = table.with_columns(
                pl.Series(t("cases.collector"), [r["collector"] for r in rows])
            )
        selection = st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            on_select="rerun",
            selection_mode="single-row",
            key="queue_table",
        )
        picked = selection.selection.rows if selection else []
        buttons = st.columns(2)
        if buttons[0].button(
            t("queue.open"),
            key="queue_open",
            type="primary",
            disabled=not picked,
            icon=":material/open_in_new:",
        ):
            open_case(int(rows[picked[0]]["id"]))
        if buttons[1].button(
            t("queue.next"), key="queue_next", icon=":material/skip_next:"
        ):
            top = ui.call(queue.next_case_id, actor=actor, collector_id=collector_id)
            if top is not None:
                open_case(top)
        if not picked:
            st.caption(t("queue.pick"))

with right:
    st.subheader(t("queue.reminders"))
    found = []
    if actor.role in ("collector", "team_lead"):
        found = ui.call(reminders.reminders_for, actor=actor, user_id=collector_id)
    if not found:
        st.caption(t("queue.no_reminders"))
    for index, reminder in enumerate(found or []):
        due_at = format_moment(reminder.due_at, lang, actor.timezone)
        label = f"{t('reminder.' + reminder.kind)} · {reminder.case_no}"
        if st.button(label, key=f"queue_reminder_{index}", help=due_at or None):
            open_case(reminder.case_id)
