"""Risk models: champion and challengers with their figures, training, promotion,
the scorecard points (admins edit them) and the grade distribution."""

from decimal import Decimal

import plotly.graph_objects as go
import polars as pl
import streamlit as st
from pydantic import ValidationError

from recova import ui
from services import scoring
from services.scoring.grading import GRADES, GradeBands
from services.scoring.scorecard import scorecard_from_rows, scorecard_to_rows
from services.segments import local_today

actor = ui.require_actor()
t = ui.t
st.title(t("nav.models"))
if actor.role not in ("admin", "manager"):
    st.error(t("model.managers_only"))
    st.stop()


def lift_chart(metrics: dict) -> go.Figure:
    deciles = [row["decile"] for row in metrics["lift"]]
    figure = go.Figure(go.Bar(x=deciles, y=[row["lift"] for row in metrics["lift"]]))
    figure.add_hline(y=1, line_dash="dot")
    figure.update_layout(
        title=t("model.lift_title"),
        xaxis_title=t("model.decile"),
        yaxis_title=t("model.lift"),
        height=320,
    )
    return figure


def calibration_chart(metrics: dict) -> go.Figure:
    rows = metrics["calibration"]
    predicted = [row["predicted"] for row in rows]
    figure = go.Figure(
        go.Scatter(
            x=predicted,
            y=[row["observed"] for row in rows],
            mode="lines+markers",
            name=t("model.observed"),
        )
    )
    top = max([*predicted, *(row["observed"] for row in rows), 0.01])
    figure.add_trace(
        go.Scatter(x=[0, top], y=[0, top], mode="lines", line_dash="dot", name="y = x")
    )
    figure.update_layout(
        title=t("model.calibration_title"),
        xaxis_title=t("model.predicted"),
        yaxis_title=t("model.observed"),
        height=320,
    )
    return figure


def show_models() -> None:
    versions = ui.call(scoring.list_models, actor=actor) or []
    if not versions:
        st.info(t("model.none"))
        return
    table = pl.DataFrame(
        [
            {
                t("model.id"): view.id,
                t("model.name"): view.name,
                t("model.kind"): t(f"model.kind_{view.kind}"),
                t("model.source"): t(f"model.source_{view.source}"),
                t("model.status"): t(f"model.status_{view.status}"),
                "AUC": view.auc,
                "KS": view.ks,
                t("model.offered"): view.offered,
                t("model.proposed"): view.proposed,
            }
            for view in versions
        ]
    )
    st.dataframe(table, hide_index=True, key="model_table")
    show_model(versions)


def show_model(versions: list[scoring.ModelView]) -> None:
    by_id = {view.id: view for view in versions}
    proposed = next((view.id for view in versions if view.proposed), versions[0].id)
    chosen = st.selectbox(
        t("model.pick"),
        list(by_id),
        index=list(by_id).index(proposed),
        format_func=lambda model_id: f"{model_id} · {by_id[model_id].name}",
        key="model_pick",
    )
    view = by_id[chosen]
    left, right = st.columns(2)
    left.plotly_chart(lift_chart(view.metrics), key="model_lift")
    right.plotly_chart(calibration_chart(view.metrics), key="model_calibration")
    if view.metrics.get("plain_logistic_auc") is not None:
        st.caption(t("model.plain_auc", auc=view.metrics["plain_logistic_auc"]))
    if not view.offered:
        st.warning(t("model.not_offered", auc=view.auc))
    elif not view.usable_on_cases:
        st.warning(t("model.not_for_cases"))
    can_promote = view.offered and view.usable_on_cases and view.status != "champion"
    if st.button(
        t("model.promote"),
        key="model_promote",
        disabled=not can_promote,
        type="primary",
    ):
        promoted = ui.call(scoring.promote_model, actor=actor, model_id=view.id)
        if promoted is not None:
            st.success(t("model.promoted", name=promoted.name))
    if any(item.status == "champion" for item in versions) and st.button(
        t("model.use_scorecard"), key="model_use_scorecard"
    ):
        ui.call(scoring.use_scorecard, actor=actor)
        st.success(t("model.scorecard_restored"))
    show_model_bands(view)


def band_inputs(bands: GradeBands, prefix: str, disabled: bool) -> dict[str, float]:
    st.markdown(f"**{t('grade.bands')}**")
    columns = st.columns(4)
    return {
        grade: columns[index].number_input(
            t("grade.minimum", grade=grade),
            value=float(getattr(bands, grade)),
            disabled=disabled,
            key=f"{prefix}_{grade}",
        )
        for index, grade in enumerate(GRADES[:-1])
    }


def read_bands(values: dict[str, float]) -> GradeBands | None:
    try:
        return GradeBands(
            **{grade: Decimal(str(value)) for grade, value in values.items()}
        )
    except ValidationError:
        st.error(t("grade.bands_invalid"))
        return None


def show_model_bands(view: scoring.ModelView) -> None:
    values = band_inputs(view.bands, f"model_band_{view.id}", disabled=False)
    st.caption(t("grade.model_bands_help"))
    if st.button(t("grade.save_bands"), key="model_bands_save"):
        bands = read_bands(values)
        if bands is not None:
            saved = ui.call(
                scoring.save_model_bands, actor=actor, model_id=view.id, bands=bands
            )
            if saved is not None:
                st.success(t("grade.bands_saved"))


def show_training() -> None:
    defaults = scoring.history_defaults()
    st.subheader(t("model.train_history"))
    columns = st.columns(4)
    train_from = columns[0].date_input(
        t("model.train_from"), defaults.train_from, key="train_from"
    )
    train_to = columns[1].date_input(
        t("model.train_to"), defaults.train_to, key="train_to"
    )
    evaluate_on = columns[2].date_input(
        t("model.evaluate_on"), defaults.evaluate_on, key="evaluate_on"
    )
    step_days = columns[3].number_input(
        t("model.step_days"), min_value=1, max_value=90, value=7, key="step_days"
    )
    st.caption(t("model.train_help"))
    if st.button(t("model.train"), key="model_train_history", type="primary"):
        try:
            data = scoring.HistoryTrainInput(
                train_from=train_from,
                train_to=train_to,
                evaluate_on=evaluate_on,
                step_days=int(step_days),
            )
        except ValidationError:
            st.error(t("model.dates_invalid"))
            return
        with st.spinner(t("model.training")):
            result = ui.call(scoring.train_from_history, actor=actor, data=data)
        if result is not None:
            show_result(result)

    st.subheader(t("model.train_file"))
    upload = st.file_uploader(
        t("model.file"), type=["csv", "txt", "xlsx", "xls"], key="train_upload"
    )
    label = st.text_input(t("model.label_column"), key="train_label")
    positive = st.text_input(t("model.positive_value"), key="train_positive")
    if st.button(t("model.train"), key="model_train_file", disabled=upload is None):
        if not label.strip():
            st.error(t("model.label_required"))
            return
        data = scoring.FileTrainInput(
            label=label.strip(), positive=positive.strip() or None
        )
        with st.spinner(t("model.training")):
            result = ui.call(
                scoring.train_from_file,
                actor=actor,
                content=upload.getvalue(),
                filename=upload.name,
                data=data,
            )
        if result is not None:
            show_result(result)


def show_result(result: scoring.TrainingResult) -> None:
    st.success(
        t(
            "model.trained",
            train_rows=result.train_rows,
            evaluation_rows=result.evaluation_rows,
        )
    )
    for kind, figures in result.metrics.items():
        st.write(
            t(
                "model.figures",
                kind=t(f"model.kind_{kind}"),
                auc=figures["auc"],
                ks=figures["ks"],
            )
        )
    if result.plain_logistic_auc is not None:
        st.write(t("model.plain_auc", auc=result.plain_logistic_auc))
    if result.proposed_id is None:
        st.warning(t("model.none_offered"))


def show_grades() -> None:
    if st.button(t("score.run_now"), key="score_run"):
        result = ui.call(scoring.score_open_cases, actor=actor, day=local_today())
        if result is not None:
            st.success(t("score.done", scored=result.scored, changed=result.changed))
    counts = ui.call(scoring.grade_distribution, actor=actor) or {}
    run = ui.call(scoring.latest_run, actor=actor)
    if run is None:
        st.info(t("grade.never_scored"))
    else:
        st.caption(
            t(
                "grade.last_run",
                day=run.day.isoformat(),
                model=run.counts.get("model", run.scorer),
                scored=run.counts.get("scored", 0),
            )
        )
    names = [*(t(f"grade.{grade}") for grade in GRADES), t("grade.none")]
    values = [counts.get(grade, 0) for grade in (*GRADES, "-")]
    figure = go.Figure(go.Bar(x=names, y=values))
    figure.update_layout(
        title=t("grade.distribution"), yaxis_title=t("grade.cases"), height=320
    )
    st.plotly_chart(figure, key="grade_chart")


def show_scorecard() -> None:
    with ui.db_session() as session:
        view = scoring.current_scorecard(session)
    card = view.scorecard
    st.caption(t("score.scorecard_version", version=view.version))
    is_admin = actor.role == "admin"
    base = st.number_input(
        t("score.base_points"),
        value=card.base,
        step=1,
        disabled=not is_admin,
        key="scorecard_base",
    )
    rows = pl.DataFrame(scorecard_to_rows(card))
    edited = st.data_editor(
        rows,
        hide_index=True,
        num_rows="dynamic" if is_admin else "fixed",
        disabled=not is_admin,
        key="scorecard_editor",
        column_config={
            "feature": t("score.feature"),
            "kind": t("score.row_kind"),
            "bound": t("score.bound"),
            "points": t("score.points"),
        },
    )
    st.caption(t("score.editor_help"))
    bands = band_inputs(card.bands, "band", disabled=not is_admin)
    if not is_admin:
        return
    if st.button(t("score.save_scorecard"), key="scorecard_save", type="primary"):
        new_bands = read_bands(bands)
        if new_bands is None:
            return
        try:
            rows_out = pl.DataFrame(edited).to_dicts()
            scorecard = scorecard_from_rows(rows_out, int(base), new_bands)
        except (ValidationError, ValueError) as error:
            st.error(t("score.scorecard_invalid", reason=str(error)))
            return
        saved = ui.call(
            scoring.save_scorecard,
            actor=actor,
            data=scoring.ScorecardInput(scorecard=scorecard),
        )
        if saved is not None:
            st.success(t("score.scorecard_saved", version=saved.version))


tabs = st.tabs(
    [
        t("model.tab_models"),
        t("model.tab_train"),
        t("grade.tab"),
        t("score.tab_scorecard"),
    ]
)
# Tabs that change data run first, so the lists in the other tabs show the change.
with tabs[1]:
    show_training()
with tabs[3]:
    show_scorecard()
with tabs[0]:
    show_models()
with tabs[2]:
    show_grades()
