"""The queue page through AppTest: counters, rows in order, opening a case."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from streamlit.testing.v1 import AppTest

from services import auth
from tests.case_factories import make_batch, make_collector
from tests.conftest import APP_FILE
from tests.factories import PASSWORD, make_user
from tests.services.test_queue_support import queued_case, seed_followup

NOW = datetime.now(ZoneInfo("Asia/Shanghai"))
SELECT_FIRST_ROW = {"selection": {"rows": [0], "columns": [], "cells": []}}


def open_queue(session, username: str) -> AppTest:
    token = auth.login(session=session, username=username, password=PASSWORD).token
    at = AppTest.from_file(APP_FILE, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page("pages/queue.py").run()
    assert not at.exception
    return at


def three_cases(session):
    seed_followup(session)
    ann = make_collector(session, "ann", team="North")
    batch = make_batch(session)
    queued_case(
        session, batch, ann, "LATER", NOW, next_action_at=NOW + timedelta(days=1)
    )
    queued_case(
        session,
        batch,
        ann,
        "BROKEN",
        NOW,
        promise_broken_at=NOW - timedelta(hours=3),
        next_action_at=NOW + timedelta(days=2),
    )
    queued_case(
        session, batch, ann, "PAST", NOW, next_action_at=NOW - timedelta(days=2)
    )
    session.commit()
    return ann


def test_queue_lists_cases_in_order(session):
    three_cases(session)
    at = open_queue(session, "ann")

    frame = at.dataframe[0].value
    assert list(frame["案件编号"]) == ["BROKEN", "PAST", "LATER"]
    assert list(frame["排在前面的原因"])[0] == "承诺违约"
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["违约承诺"] == "1"
    assert metrics["已逾期"] == "1"


def test_open_selected_case(session):
    three_cases(session)
    at = open_queue(session, "ann")
    at.session_state["queue_table"] = SELECT_FIRST_ROW
    at.run()
    at.button(key="queue_open").click().run()

    assert not at.exception
    assert "BROKEN" in at.subheader[0].value
    assert at.query_params["case"] == str(at.session_state["case_file_id"])


def test_next_case_opens_top(session):
    three_cases(session)
    at = open_queue(session, "ann")
    at.button(key="queue_next").click().run()

    assert not at.exception
    assert "BROKEN" in at.subheader[0].value


def test_due_filter_narrows_rows(session):
    three_cases(session)
    at = open_queue(session, "ann")
    at.selectbox(key="queue_due").set_value("broken").run()

    assert list(at.dataframe[0].value["案件编号"]) == ["BROKEN"]


def test_team_lead_sees_collector_column(session):
    three_cases(session)
    make_user(session, "lena", role="team_lead", team="North")
    at = open_queue(session, "lena")

    frame = at.dataframe[0].value
    assert list(frame["催收员"]) == ["ann", "ann", "ann"]
