"""The assignment board and the strategies page, driven through AppTest."""

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import Case, SegmentRuleSet, User
from services import auth, case_moves
from services.users import validated
from tests.case_factories import make_batch, make_case, make_collector
from tests.conftest import ROOT
from tests.factories import PASSWORD, make_user

APP = str(ROOT / "app.py")


def open_page(session, username, role, page, **fields) -> AppTest:
    make_user(session, username, role=role, **fields)
    token = auth.login(session=session, username=username, password=PASSWORD).token
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    return at


def board_with_cases(session, role="manager", **fields) -> AppTest:
    make_collector(session, "ann", regions=["广东"], team="North")
    make_collector(session, "bob", regions=["广东"], team="North")
    batch = make_batch(session)
    make_case(session, batch, "C1", total_due="3000.00")
    make_case(session, batch, "C2", total_due="2000.00")
    make_case(session, batch, "FAR", province="西藏")
    session.commit()
    return open_page(session, "mia", role, "pages/board.py", **fields)


def frame_with(at: AppTest, column: str):
    """Return the first table on the page that has `column`."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with column {column}")


def holders(session) -> dict[str, str | None]:
    session.expire_all()
    rows = session.execute(
        select(Case.case_no, User.username).outerjoin(
            User, User.id == Case.collector_id
        )
    ).all()
    return dict(rows)


def test_board_shows_load_and_unassigned(session):
    at = board_with_cases(session)
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["未分配案件"] == "3"
    assert list(frame_with(at, "容量")["催收员"]) == ["ann", "bob"]
    assert len(frame_with(at, "状态或原因")) == 3


def test_preview_then_apply(session):
    at = board_with_cases(session)
    at.button(key="board_preview").click().run()
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["待分配案件"] == "2"
    assert metrics["仍未分配案件"] == "1"
    assert holders(session) == {"C1": None, "C2": None, "FAR": None}

    at.button(key="board_apply").click().run()
    assert not at.exception
    assert "已分配 2 件" in at.success[0].value
    assert holders(session) == {"C1": "ann", "C2": "bob", "FAR": None}


def test_apply_after_collector_paused_is_rejected(session):
    at = board_with_cases(session)
    at.button(key="board_preview").click().run()
    bob = session.scalar(select(User).where(User.username == "bob"))
    bob.is_paused = True
    session.commit()
    at.button(key="board_apply").click().run()
    assert at.error
    assert "重新预览" in at.error[0].value
    assert set(holders(session).values()) == {None}


def pick_and_assign(at: AppTest, session, case_nos, collector, reason):
    ids = dict(session.execute(select(Case.case_no, Case.id)).all())
    users = dict(session.execute(select(User.username, User.id)).all())
    at.multiselect(key="board_cases").set_value([ids[c] for c in case_nos])
    at.selectbox(key="board_target").set_value(users[collector])
    at.text_input(key="board_reason").input(reason)
    at.button(key="board_assign").click().run()
    assert not at.exception


def test_manual_assignment(session):
    at = board_with_cases(session)
    pick_and_assign(at, session, ["FAR"], "bob", "speaks Tibetan")
    assert "1 件" in at.success[0].value
    assert holders(session)["FAR"] == "bob"


def test_manual_assignment_needs_reason(session):
    at = board_with_cases(session)
    pick_and_assign(at, session, ["FAR"], "bob", "  ")
    assert at.error
    assert holders(session)["FAR"] is None


def test_stale_board_shows_who_changed(session):
    at = board_with_cases(session)
    case = session.scalar(select(Case).where(Case.case_no == "C1"))
    ann = session.scalar(select(User).where(User.username == "ann"))
    other = make_user(session, "olga", role="manager")
    data = validated(
        case_moves.ManualAssignment,
        cases=[{"case_id": case.id, "version": case.version}],
        collector_id=ann.id,
        reason="olga's call",
    )
    case_moves.assign_cases(session=session, actor=other, data=data)

    pick_and_assign(at, session, ["C1"], "bob", "rebalance")

    assert at.error
    assert "olga" in at.error[0].value
    assert holders(session)["C1"] == "ann"


def test_switch_collector(session):
    at = board_with_cases(session)
    make_collector(session, "cid", regions=["广东"], team="North")
    at.button(key="board_preview").click().run()
    at.button(key="board_apply").click().run()
    ann = session.scalar(select(User).where(User.username == "ann"))
    c1 = session.scalar(select(Case).where(Case.case_no == "C1"))
    at.selectbox(key="board_source").set_value(ann.id).run()
    at.selectbox(key="board_switch_case").set_value(c1.id)
    at.text_input(key="board_switch_reason").input("debtor refuses ann")
    at.button(key="board_switch").click().run()
    assert not at.exception
    assert not at.error
    assert holders(session)["C1"] == "cid"


def test_pause_collector_and_move_cases(session):
    at = board_with_cases(session)
    at.button(key="board_preview").click().run()
    at.button(key="board_apply").click().run()
    ann = session.scalar(select(User).where(User.username == "ann"))
    at.selectbox(key="board_collector").set_value(ann.id).run()
    at.checkbox(key="board_edit_paused").check()
    at.button(key="board_save_collector").click().run()
    assert not at.exception
    session.refresh(ann)
    assert ann.is_paused

    at.text_input(key="board_move_reason").input("on leave")
    at.button(key="board_move").click().run()
    assert not at.exception
    assert holders(session)["C1"] == "bob"


def test_team_lead_sees_own_team_only(session):
    make_collector(session, "south1", team="South")
    at = board_with_cases(session, role="team_lead", team="North")
    assert list(frame_with(at, "容量")["催收员"]) == ["ann", "bob"]
    keys = {button.key for button in at.button}
    assert "board_preview" not in keys


def test_collector_has_no_board(session):
    make_user(session, "cara", role="collector")
    token = auth.login(session=session, username="cara", password=PASSWORD).token
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["auth_token"] = token
    at.run()
    with pytest.raises(ValueError):
        at.switch_page("pages/board.py")


def test_strategies_page_saves_rules(session):
    at = open_page(session, "ada", "admin", "pages/strategies.py")
    key = "strategies_rules_0"
    at.session_state[key] = {
        "edited_rows": {2: {"value": "40000"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    at.text_input(key="strategies_rules_note").input("lower heavy limit")
    at.button(key="strategies_save_rules").click().run()
    assert not at.exception
    assert not at.error
    saved = session.scalar(select(SegmentRuleSet))
    assert saved.version == 1
    heavy = saved.rules[1]["conditions"][0]
    assert heavy == {"field": "total_due", "op": "gt", "value": "40000"}


def test_strategies_page_saves_strategy(session):
    at = open_page(session, "ada", "admin", "pages/strategies.py")
    at.selectbox(key="strategies_pick").set_value("heavy").run()
    at.number_input(key="strategies_hours").set_value(2)
    at.button(key="strategies_save").click().run()
    assert not at.exception
    assert not at.error
    assert "heavy" in at.success[0].value


def test_strategies_page_classifies(session):
    batch = make_batch(session)
    make_case(session, batch, "C1")
    session.commit()
    at = open_page(session, "ada", "admin", "pages/strategies.py")
    at.button(key="strategies_classify").click().run()
    assert not at.exception
    assert "1" in at.success[0].value
