"""KPI page: headline figures with their formulas, charts, drill-down and downloads."""

from datetime import date, timedelta
from decimal import Decimal

import plotly.express as px
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from recova import ui
from recova.i18n import format_moment, format_money, format_number, make_translator
from services import kpi, reports, snapshots
from services.files.export import write_csv, write_xlsx
from services.segments import local_today

actor = ui.require_actor()
lang = ui.language()
# Bound to this run's language: AppTest calls format_func outside the script run,
# where ui.t would fall back to the default language.
t = make_translator(lang)
# Select boxes keep the label of their value from the language they were drawn in,
# so each language has its own widgets (a change of language resets the filters).
HIDDEN_FILTERS = {"collector": ("team", "collector"), "team_lead": ("team",)}
FILTER_FIELDS = {
    "creditor": "creditor_id",
    "batch": "batch_id",
    "product": "product",
    "province": "province",
    "bucket": "bucket",
    "segment": "segment",
    "grade": "grade",
    "team": "team_id",
    "collector": "collector_id",
}
INTEGER_FILTERS = ("creditor", "batch", "team", "collector")
HEADLINE_ROWS = (
    ("recovery_rate", "recovered", "case_recovery_rate", "avg_cycle_days"),
    ("contact_rate", "rpc_rate", "ptp_rate", "ptp_kept_rate"),
    ("ptp_kept_amount_rate", "roll_rate", "cure_rate", "sla_compliance"),
    ("attempts_per_day", "rpc_per_day", "promises_per_day", "recovered_per_day"),
)
# Figures where a rise is bad news, so the change is coloured the other way.
LOWER_IS_BETTER = ("roll_rate", "avg_cycle_days")
KINDS = {figure_id: kind for figure_id, kind, _, _ in kpi.FIGURES}
STATE_ORDER = kpi.BUCKETS + ("current", "paid", "settled", "written_off", "recalled")


def shown(value: Decimal | None, kind: str) -> str:
    if value is None:
        return t("kpi.no_value")
    if kind == "rate":
        return format_number(value * 100, lang, 2) + "%"
    if kind == "money":
        return format_money(value, lang)
    return format_number(value, lang, 2)


def change_text(figure: kpi.Figure) -> str | None:
    change = figure.change
    if change is None:
        return None
    if figure.kind == "rate":
        return f"{change * 100:+.2f} {t('kpi.points')}"
    sign = "+" if change >= 0 else "-"
    if figure.kind == "money":
        return sign + format_money(abs(change), lang)
    return sign + format_number(abs(change), lang, 2)


def last_full_month() -> tuple[date, date]:
    end = local_today().replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


def dimension_label(dim: str, key: str, options: dict) -> str:
    if key == "":
        return t("kpi.none")
    if dim == "bucket" and key == "current":
        return t("kpi.current")
    return dict(options.get(dim, [])).get(key, key)


# Filters


def read_filters(options: dict) -> kpi.KpiFilter | None:
    default_from, default_to = last_full_month()
    hidden = HIDDEN_FILTERS.get(actor.role, ())
    with st.container(border=True):
        first = st.columns(4)
        start = first[0].date_input(t("kpi.period_from"), default_from, key="kpi_from")
        end = first[1].date_input(t("kpi.period_to"), default_to, key="kpi_to")
        chosen = {}
        shown_dims = [dim for dim in FILTER_FIELDS if dim not in hidden]
        columns = first[2:] + st.columns(4) + st.columns(4)
        for column, dim in zip(columns, shown_dims, strict=False):
            choices = [""] + [key for key, _ in options.get(dim, [])]
            value = column.selectbox(
                t(f"kpi.filter.{dim}"),
                choices,
                format_func=lambda key, dim=dim: (
                    t("kpi.all") if key == "" else dimension_label(dim, key, options)
                ),
                key=f"kpi_filter_{dim}_{lang}",
            )
            if value:
                chosen[FILTER_FIELDS[dim]] = (
                    int(value) if dim in INTEGER_FILTERS else value
                )
    if start > end:
        st.error(t("kpi.period_order", start=start, end=end))
        return None
    return kpi.KpiFilter(date_from=start, date_to=end, **chosen)


# Headline figures


def headline(result: kpi.KpiResult, filters: kpi.KpiFilter) -> None:
    previous = filters.previous()
    st.caption(
        t(
            "kpi.caption",
            start=filters.date_from,
            end=filters.date_to,
            previous_start=previous.date_from,
            previous_end=previous.date_to,
        )
    )
    if actor.role == "collector":
        st.caption(t("kpi.caption_collector"))
    elif actor.role == "team_lead":
        st.caption(t("kpi.caption_team"))
    for row in HEADLINE_ROWS:
        # The total recovered needs the room of a wider card to show every digit.
        widths = [1.6 if figure_id == "recovered" else 1 for figure_id in row]
        for column, figure_id in zip(st.columns(widths), row, strict=True):
            figure = result.figures[figure_id]
            column.metric(
                t(f"kpi.figure.{figure_id}"),
                shown(figure.value, figure.kind),
                delta=change_text(figure),
                delta_color="inverse" if figure_id in LOWER_IS_BETTER else "normal",
                help=t(figure.formula),
                border=True,
            )


def source_note(result: kpi.KpiResult) -> None:
    if result.source == "live":
        st.caption(t("kpi.source.live"))
        return
    status = ui.call(snapshots.snapshot_status) or {}
    refreshed = format_moment(status.get("last_refresh"), lang, actor.timezone)
    st.caption(t("kpi.source.aggregates", refreshed=refreshed))


# Tables and downloads


def display_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Return the frame with translated headers and rates as percentages."""
    converted = frame.with_columns(
        (pl.col(name).cast(pl.Float64) * 100).round(2).alias(name)
        for name in frame.columns
        if KINDS.get(name) == "rate"
    )
    names = {}
    for name in converted.columns:
        if name in KINDS:
            suffix = " (%)" if KINDS[name] == "rate" else ""
            names[name] = t(f"kpi.figure.{name}") + suffix
        elif name.startswith("k_") or name in ("key",):
            names[name] = t("kpi.column.key")
        else:
            translated = t(f"kpi.column.{name}")
            names[name] = name if translated == f"kpi.column.{name}" else translated
    return converted.rename(names)


def table_with_downloads(frame: pl.DataFrame, name: str, key: str) -> None:
    st.dataframe(frame, hide_index=True, width="stretch")
    columns = st.columns(2)
    columns[0].download_button(
        t("kpi.download.xlsx"),
        data=write_xlsx({name: frame}),
        file_name=f"{key}.xlsx",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        key=f"{key}_xlsx",
    )
    columns[1].download_button(
        t("kpi.download.csv"),
        data=write_csv(frame),
        file_name=f"{key}.csv",
        mime="text/csv",
        key=f"{key}_csv",
    )


def floats(frame: pl.DataFrame) -> pl.DataFrame:
    """Return the frame with decimals as floats, which plotly can draw."""
    return frame.with_columns(
        pl.col(name).cast(pl.Float64)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Decimal)
    )


# Charts


def trend_tab(filters: kpi.KpiFilter) -> None:
    series = ui.call(kpi.time_series, actor=actor, filters=filters)
    if series is None:
        return
    chart = px.bar(
        floats(series),
        x="day",
        y="recovered",
        title=t("kpi.chart.recovered_by_day"),
        labels={"day": t("kpi.axis.day"), "recovered": t("kpi.figure.recovered")},
    )
    st.plotly_chart(chart, key="kpi_trend_chart")
    table_with_downloads(display_frame(series), t("kpi.tab.trend"), "kpi_trend")


def vintage_tab(filters: kpi.KpiFilter) -> None:
    curves = ui.call(kpi.vintage, actor=actor, filters=filters)
    if curves is None or curves.is_empty():
        st.info(t("kpi.no_data"))
        return
    chart = px.line(
        curves,
        x="month",
        y="recovery_rate",
        color="batch",
        markers=True,
        title=t("kpi.chart.vintage"),
        labels={
            "month": t("kpi.axis.month"),
            "recovery_rate": t("kpi.figure.recovery_rate"),
            "batch": t("kpi.axis.batch"),
        },
    )
    chart.update_yaxes(tickformat=".1%")
    st.plotly_chart(chart, key="kpi_vintage_chart")
    labels = {
        "batch": t("kpi.axis.batch"),
        "month": t("kpi.axis.month"),
        "recovery_rate": t("kpi.figure.recovery_rate"),
    }
    table_with_downloads(curves.rename(labels), t("kpi.tab.vintage"), "kpi_vintage")


def state_label(state: str) -> str:
    if state == "current":
        return t("kpi.current")
    translated = t(f"status.{state}")
    return state if translated == f"status.{state}" else translated


def roll_tab(result: kpi.KpiResult) -> None:
    if not result.roll_matrix:
        st.info(t("kpi.no_roll"))
        return
    frame = pl.DataFrame(result.roll_matrix)
    order = [
        state for state in STATE_ORDER if state in set(frame["to_state"].to_list())
    ]
    labels = {state: state_label(state) for state in order}
    frame = frame.with_columns(
        pl.col("to_state").replace_strict(labels),
        pl.col("share").cast(pl.Float64),
    )
    grid = frame.pivot(on="to_state", index="from_bucket", values="share").fill_null(0)
    states = [labels[state] for state in order]
    chart = px.imshow(
        grid.select(states).to_numpy(),
        x=states,
        y=grid["from_bucket"].to_list(),
        text_auto=".1%",
        aspect="auto",
        color_continuous_scale="Blues",
        labels={
            "x": t("kpi.axis.to_state"),
            "y": t("kpi.axis.from_bucket"),
            "color": t("kpi.axis.share"),
        },
        title=t("kpi.chart.roll"),
    )
    st.plotly_chart(chart, key="kpi_roll_chart", width="stretch")
    labels = {
        "from_bucket": t("kpi.axis.from_bucket"),
        "to_state": t("kpi.axis.to_state"),
        "cases": t("kpi.column.cases"),
        "balance": t("report.column.balance"),
        "share": t("kpi.axis.share"),
    }
    table_with_downloads(frame.rename(labels), t("kpi.tab.roll"), "kpi_roll")


def funnel_tab(result: kpi.KpiResult) -> None:
    totals = result.totals
    stages = ("attempts", "connected", "rpc", "promises", "kept")
    names = {"kept": "promises_kept"}
    values = [int(totals.get(names.get(stage, stage), 0)) for stage in stages]
    chart = go.Figure(
        go.Funnel(
            y=[t(f"kpi.funnel.{stage}") for stage in stages],
            x=values,
            textinfo="value+percent initial",
        )
    )
    chart.update_layout(title=t("kpi.chart.funnel"))
    st.plotly_chart(chart, key="kpi_funnel_chart")


def breakdown_frame(filters: kpi.KpiFilter, by: str) -> pl.DataFrame | None:
    return ui.call(kpi.breakdown, actor=actor, filters=filters, by=by)


def leaderboard_tab(filters: kpi.KpiFilter) -> None:
    frame = breakdown_frame(filters, "collector")
    if frame is None or frame.is_empty():
        st.info(t("kpi.no_data"))
        return
    columns = ["label", "recovered", "recovery_rate", "attempts", "rpc", "promises"]
    columns += ["working_days", "attempts_per_day", "recovered_per_day"]
    chart = px.bar(
        floats(frame.head(20)),
        x="label",
        y="recovered",
        labels={
            "label": t("kpi.filter.collector"),
            "recovered": t("kpi.figure.recovered"),
        },
    )
    st.plotly_chart(chart, key="kpi_leaderboard_chart")
    table_with_downloads(
        display_frame(frame.select(columns)), t("kpi.tab.leaderboard"), "kpi_collectors"
    )


def province_tab(filters: kpi.KpiFilter) -> None:
    frame = breakdown_frame(filters, "province")
    if frame is None or frame.is_empty():
        st.info(t("kpi.no_data"))
        return
    frame = frame.sort("recovery_rate", descending=True, nulls_last=True)
    chart = px.bar(
        floats(frame),
        x="label",
        y="recovery_rate",
        title=t("kpi.chart.province"),
        labels={
            "label": t("kpi.filter.province"),
            "recovery_rate": t("kpi.figure.recovery_rate"),
        },
    )
    chart.update_yaxes(tickformat=".1%")
    event = st.plotly_chart(
        chart, key="kpi_province_chart", on_select="rerun", selection_mode="points"
    )
    points = event.selection.points if event and event.selection else []
    if points:
        st.session_state["kpi_drill_key"] = f"province:{points[0]['x']}"
    columns = ["label", "cases", "recovered", "recovery_rate", "case_recovery_rate"]
    table_with_downloads(
        display_frame(frame.select(columns)), t("kpi.tab.province"), "kpi_provinces"
    )


def sla_tab(filters: kpi.KpiFilter) -> None:
    # A collector's figures are one row either way; by collector reads stored sums.
    by = "collector" if actor.role == "collector" else "team"
    frame = breakdown_frame(filters, by)
    if frame is None or frame.is_empty():
        st.info(t("kpi.no_data"))
        return
    chart = px.bar(
        floats(frame),
        x="label",
        y="sla_compliance",
        title=t("kpi.chart.sla"),
        labels={
            "label": t(f"kpi.filter.{by}"),
            "sla_compliance": t("kpi.figure.sla_compliance"),
        },
    )
    chart.update_yaxes(tickformat=".0%")
    st.plotly_chart(chart, key="kpi_sla_chart")
    columns = ["label", "sla_compliance", "avg_cycle_days", "recovered"]
    table_with_downloads(
        display_frame(frame.select(columns)), t("kpi.tab.sla"), "kpi_sla"
    )


def drill_tab(filters: kpi.KpiFilter) -> None:
    figure = st.selectbox(
        t("kpi.drill.figure"),
        kpi.FIGURE_IDS,
        format_func=lambda figure_id: t(f"kpi.figure.{figure_id}"),
        key=f"kpi_drill_figure_{lang}",
    )
    key = st.session_state.get("kpi_drill_key", "")
    if key:
        st.caption(t("kpi.drill.selected", figure=t(f"kpi.figure.{figure}"), key=key))
    frame = ui.call(
        kpi.drill_down, actor=actor, filters=filters, figure=figure, key=key
    )
    if frame is None:
        return
    st.caption(t("kpi.drill.count", count=frame.height, limit=kpi.DRILL_LIMIT))
    labels = {
        name: t(f"report.column.{name}")
        for name in ("case_no", "creditor", "batch", "balance", "status", "total_due")
    }
    labels.update(
        {"collector": t("kpi.filter.collector"), "province": t("kpi.filter.province")}
    )
    table_with_downloads(frame.rename(labels), t("kpi.tab.drill"), "kpi_cases")


def statement_tab(options: dict) -> None:
    batches = options.get("batch", [])
    if not batches:
        st.info(t("report.statement.no_batches"))
        return
    columns = st.columns(2)
    batch = columns[0].selectbox(
        t("report.statement.batch"),
        [key for key, _ in batches],
        format_func=dict(batches).get,
        key=f"kpi_statement_batch_{lang}",
    )
    month = columns[1].date_input(
        t("report.statement.month"), last_full_month()[0], key="kpi_statement_month"
    )
    statement = ui.call(
        reports.creditor_statement, actor=actor, batch_id=int(batch), month=month
    )
    if statement is None:
        return
    st.download_button(
        t("report.statement.download"),
        data=reports.statement_workbook(statement, lang),
        file_name=f"statement-{batch}-{month:%Y-%m}.xlsx",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        help=t("report.statement.help"),
        key="kpi_statement_download",
    )


st.title(t("nav.kpi"))
options = ui.call(kpi.filter_options, actor=actor) or {}
filters = read_filters(options)
if filters is not None:
    result = ui.call(kpi.kpis, actor=actor, filters=filters)
    if result is not None:
        headline(result, filters)
        source_note(result)
        tab_keys = ["trend", "vintage", "roll", "funnel", "leaderboard", "province"]
        tab_keys += ["sla", "drill"]
        if actor.role in reports.REPORT_READERS:
            tab_keys.append("statement")
        tabs = dict(
            zip(
                tab_keys,
                st.tabs([t(f"kpi.tab.{key}") for key in tab_keys]),
                strict=True,
            )
        )
        with tabs["trend"]:
            trend_tab(filters)
        with tabs["vintage"]:
            vintage_tab(filters)
        with tabs["roll"]:
            roll_tab(result)
        with tabs["funnel"]:
            funnel_tab(result)
        with tabs["leaderboard"]:
            leaderboard_tab(filters)
        with tabs["province"]:
            province_tab(filters)
        with tabs["sla"]:
            sla_tab(filters)
        with tabs["drill"]:
            drill_tab(filters)
        if "statement" in tabs:
            with tabs["statement"]:
                statement_tab(options)
