"""Case intake: upload a placement file, check the mapping, import, read the report."""

import hashlib
import json
from datetime import date

import polars as pl
import streamlit as st

from recova import ui
from recova.errors import RecovaError
from recova.i18n import format_money
from services import cases, intake
from services.files.headers import FIELDS

actor = ui.require_actor()
t = ui.t
EXTRA = "__extra__"

st.title(t("intake.title"))
st.caption(t("intake.caption"))

# Creditor and batch options.
with ui.db_session() as session:
    creditor_names = [
        c.name for c in cases.list_creditors(session=session, actor=actor)
    ]
NEW = "__new__"
left, right = st.columns(2)


def _remembered(name: str, options: list[str]) -> int:
    # A language switch changes the options' labels, which makes Streamlit build a
    # new widget with its default value; the last choice is restored from here.
    value = st.session_state.get(f"remembered:{name}")
    return options.index(value) if value in options else 0


creditor_options = [*creditor_names, NEW]
mode_options = ["valid-rows", "all-or-nothing"]
with left:
    choice = st.selectbox(
        t("intake.creditor"),
        creditor_options,
        index=_remembered("creditor", creditor_options),
        format_func=lambda name: t("intake.new_creditor") if name == NEW else name,
        key=f"intake_creditor_choice:{ui.language()}",
    )
    st.session_state["remembered:creditor"] = choice
    creditor = (
        st.text_input(t("intake.creditor_name"), key="intake_creditor_name").strip()
        if choice == NEW
        else choice
    )
    batch_name = st.text_input(
        t("intake.batch_name"), key="intake_batch", help=t("intake.batch_help")
    )
with right:
    placement = st.date_input(
        t("intake.placement_date"),
        value=None,
        key="intake_placement",
        help=t("intake.placement_help"),
    )
    recall = st.date_input(t("intake.recall_date"), value=None, key="intake_recall")
    mode = st.radio(
        t("intake.mode"),
        mode_options,
        index=_remembered("mode", mode_options),
        format_func=lambda value: t(f"intake.mode.{value}"),
        key=f"intake_mode:{ui.language()}",
        horizontal=True,
    )
    st.session_state["remembered:mode"] = mode

upload = st.file_uploader(
    t("intake.file"),
    type=["csv", "txt", "tsv", "xlsx", "xls"],
    key="intake_file",
    help=t("intake.file_help"),
)
if upload is None:
    st.stop()
if not creditor:
    st.warning(t("intake.creditor_needed"))
    st.stop()

content = upload.getvalue()
digest = hashlib.sha256(content).hexdigest()
mapping_key = f"mapping:{digest}:{creditor}"
user_mapping: dict[str, str | None] | None = st.session_state.get(mapping_key)


orders_key = f"date_orders:{digest}"
date_orders: dict[str, str] = st.session_state.get(orders_key, {})


@st.cache_data(show_spinner=False, max_entries=4)
def _preview(
    _content: bytes,
    digest: str,
    filename: str,
    creditor: str,
    mapping_json: str,
    placement: date | None,
    orders_json: str,
):
    # Cached per file, creditor, mapping and date orders, so a rerun does not parse
    # the file again.
    with ui.db_session() as session:
        preview = intake.preview_cases(
            session=session,
            actor=actor,
            creditor=creditor,
            content=_content,
            filename=filename,
            mapping=json.loads(mapping_json),
            placement_date=placement,
            date_orders=json.loads(orders_json) or None,
        )
    return preview


def _mapping_editor(headers: list[str], detected: dict[str, str | None]) -> None:
    """Show the column mapping; a change is kept in the session and re-parsed."""
    field_options = [EXTRA, *FIELDS]
    frame = pl.DataFrame(
        {"column": headers, "field": [detected.get(h) or EXTRA for h in headers]}
    ).to_pandas()
    edited = st.data_editor(
        frame,
        key=f"mapping_editor:{digest}",
        hide_index=True,
        disabled=["column"],
        column_config={
            "column": st.column_config.TextColumn(t("intake.source_column")),
            "field": st.column_config.SelectboxColumn(
                t("intake.field"),
                options=field_options,
                required=True,
                help=t("intake.field_help"),
                format_func=lambda name: (
                    t("intake.extra") if name == EXTRA else t(f"field.{name}")
                ),
            ),
        },
        width="stretch",
    )
    chosen = {
        row["column"]: (None if row["field"] == EXTRA else row["field"])
        for row in edited.to_dict("records")
    }
    if chosen != {h: detected.get(h) for h in headers}:
        st.session_state[mapping_key] = chosen
        st.rerun()


try:
    with st.spinner(t("intake.reading")):
        preview = _preview(
            content,
            digest,
            upload.name,
            creditor,
            json.dumps(user_mapping),
            placement,
            json.dumps(date_orders, sort_keys=True),
        )
except RecovaError as error:
    ui.show_error(error)
    st.stop()

if preview.parsed is None:
    # No header word was recognised: the user maps the first row's columns by hand.
    if preview.missing_fields:
        names = ", ".join(t(f"field.{name}") for name in preview.missing_fields)
        st.error(t("intake.missing_fields", fields=names))
    else:
        st.error(t("error.file.no_header"))
    st.info(t("intake.map_by_hand"))
    _mapping_editor(
        preview.unrecognised_headers, user_mapping or preview.detected_mapping
    )
    st.stop()
parsed = preview.parsed

# What was detected, and the mapping the user may correct.
st.subheader(t("intake.detected"))
facts = [t("intake.format", format=parsed.format)]
if parsed.encoding:
    facts.append(t("intake.encoding", encoding=parsed.encoding))
if parsed.sheet:
    facts.append(t("intake.sheet", sheet=parsed.sheet))
facts.append(t("intake.header_row", row=parsed.header_row))
facts.append(t("intake.data_rows", count=parsed.data_rows))
st.write(" · ".join(facts))
if preview.saved_mapping_used:
    st.info(t("intake.saved_mapping_used", creditor=creditor))
for issue in parsed.file_issues:
    params = {
        **issue.params,
        "column": issue.column,
        "row": issue.row,
        "value": issue.value,
    }
    st.warning(
        t(f"intake.{issue.code}", **params)
        + " "
        + t(f"intake.fix.{issue.code}", **params)
    )
    if issue.code in ("date_order_ambiguous", "date_order_conflict") and issue.column:
        order = st.radio(
            t("intake.date_order", column=issue.column),
            ["dmy", "mdy"],
            format_func=lambda value: t(f"intake.date_order.{value}"),
            index=None,
            horizontal=True,
            key=f"order:{digest}:{issue.column}",
        )
        if order and date_orders.get(issue.column) != order:
            st.session_state[orders_key] = {**date_orders, issue.column: order}
            st.rerun()

_mapping_editor(parsed.headers, parsed.mapping)
save_mapping = st.checkbox(
    t("intake.save_mapping", creditor=creditor), key="intake_save_mapping"
)

# Rows as they will be imported.
with st.expander(
    t("intake.preview_rows", count=min(parsed.cases.height, 20)), expanded=True
):
    sample = parsed.cases.head(20).drop("extra", "row", strict=False)
    sample = sample.select(
        [name for name in sample.columns if sample[name].null_count() < sample.height]
    )
    if "customer_type" in sample.columns:
        sample = sample.with_columns(
            pl.col("customer_type").replace_strict(
                {kind: t(f"customer.{kind}") for kind in ("individual", "company")},
                default=pl.col("customer_type"),
            )
        )
    money = [name for name, dtype in sample.schema.items() if dtype == pl.Decimal]
    sample = sample.with_columns(
        pl.col(name).map_elements(
            lambda value: format_money(value, ui.language()), return_dtype=pl.Utf8
        )
        for name in money
    )
    st.dataframe(
        sample.rename({name: t(f"field.{name}") for name in sample.columns}),
        hide_index=True,
    )
st.write(
    t(
        "intake.preview_counts",
        valid=parsed.cases.height,
        rejected=len(parsed.rejected),
        warnings=len(parsed.warnings),
    )
)

# The import itself; a finished report is kept so a second click imports nothing.
report_key = f"report:{digest}:{creditor}"
if st.button(
    t("intake.import"),
    type="primary",
    key="intake_import",
    disabled=report_key in st.session_state,
):
    bar = st.progress(0.0, text=t("intake.stage.parse"))

    def _progress(fraction: float, stage: str) -> None:
        bar.progress(min(fraction, 1.0), text=t(f"intake.stage.{stage}"))

    request = intake.ImportRequest(
        creditor=creditor,
        batch_name=batch_name or None,
        placement_date=placement,
        recall_date=recall,
        mode=mode,
        date_orders=date_orders or None,
        mapping=user_mapping if user_mapping is not None else None,
        save_mapping=save_mapping and user_mapping is not None,
    )
    report = ui.call(
        intake.import_cases,
        actor=actor,
        request=request,
        content=content,
        filename=upload.name,
        progress=_progress,
    )
    if report is not None:
        st.session_state[report_key] = report
        st.rerun()

report = st.session_state.get(report_key)
if report is None:
    st.stop()

st.divider()
st.subheader(t("intake.report"))
if report.refused:
    st.error(t("intake.refused", rejected=len(report.rejected)))
elif report.batch_id is None:
    st.info(t("intake.nothing_new", skipped=len(report.skipped_existing)))
else:
    st.success(t("intake.done", batch=report.batch_name, imported=report.imported))
columns = st.columns(4)
columns[0].metric(t("intake.metric.imported"), report.imported)
columns[1].metric(t("intake.metric.rejected"), len(report.rejected))
columns[2].metric(t("intake.metric.warnings"), len(report.warnings))
columns[3].metric(t("intake.metric.skipped"), len(report.skipped_existing))
st.metric(
    t("intake.metric.total_due"), format_money(report.total_due_imported, ui.language())
)

issue_columns = {
    key: t(f"report.{key}") for key in ("row", "column", "value", "message", "fix")
}


def _issue_table(issues: list[dict]) -> None:
    # Messages are rendered again in the current language, which may have changed
    # since the import.
    rows = intake.localise_issues(issues, ui.language())
    frame = pl.DataFrame(
        [{key: row[key] for key in issue_columns} for row in rows],
        infer_schema_length=None,
    ).rename(issue_columns)
    st.dataframe(frame, hide_index=True, width="stretch")


tabs = st.tabs(
    [t("intake.tab.rejected"), t("intake.tab.warnings"), t("intake.tab.skipped")]
)
with tabs[0]:
    if report.rejected:
        _issue_table(report.rejected)
    else:
        st.write(t("intake.none"))
with tabs[1]:
    if report.warnings:
        _issue_table(report.warnings)
    else:
        st.write(t("intake.none"))
with tabs[2]:
    if report.skipped_existing:
        st.dataframe(
            pl.DataFrame({t("intake.case_no"): report.skipped_existing}),
            hide_index=True,
        )
    else:
        st.write(t("intake.none"))

st.download_button(
    t("intake.download_report"),
    data=intake.report_workbook(report, ui.language()),
    file_name=f"intake-report-{report.batch_id or 'refused'}.xlsx",
    mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    key="intake_download",
    icon=":material/download:",
)
