"""The risk models page through AppTest: train on generated history, promote,
score, and save the scorecard."""

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import Case
from db.models_score import ModelVersion, ScorecardVersion
from services import auth
from tests.conftest import ROOT
from tests.factories import PASSWORD, make_user
from tests.scoring_history import make_history

APP = str(ROOT / "app.py")
PAGE = "pages/models.py"


def open_page(session, username, role) -> AppTest:
    make_user(session, username, role=role)
    token = auth.login(session=session, username=username, password=PASSWORD).token
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["auth_token"] = token
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def test_train_then_promote(session):
    make_history(session, cases=150)
    at = open_page(session, "mia", "manager")
    assert any("尚未训练模型" in item.value for item in at.info)

    at.button(key="model_train_history").click().run()
    assert not at.exception
    assert "两个模型均已保存为挑战者模型" in at.success[0].value
    rows = session.scalars(select(ModelVersion)).all()
    assert len(rows) == 2
    proposed = next(row for row in rows if row.proposed)

    at.button(key="model_promote").click().run()
    assert not at.exception
    assert "冠军模型" in at.success[0].value
    session.expire_all()
    assert session.get(ModelVersion, proposed.id).status == "champion"

    at.number_input(key=f"model_band_{proposed.id}_A").set_value(90.0).run()
    at.button(key="model_bands_save").click().run()
    assert not at.exception
    assert "分段已保存" in at.success[0].value
    session.expire_all()
    assert session.get(ModelVersion, proposed.id).bands["A"] == "90.0"


def test_score_now_grades_cases(session):
    make_history(session, cases=20, days=60)
    at = open_page(session, "mia", "manager")
    at.button(key="score_run").click().run()
    assert not at.exception
    assert "已为 20 件未结案件评分" in at.success[0].value
    grades = session.scalars(select(Case.risk_grade)).all()
    assert None not in grades


def test_admin_saves_scorecard(session):
    at = open_page(session, "ada", "admin")
    at.number_input(key="scorecard_base").set_value(45).run()
    at.button(key="scorecard_save").click().run()
    assert not at.exception
    assert "评分卡版本 1 已保存" in at.success[0].value
    saved = session.scalars(select(ScorecardVersion)).one()
    assert saved.points["base"] == 45


def test_manager_sees_scorecard_read_only(session):
    at = open_page(session, "mia", "manager")
    assert at.number_input(key="scorecard_base").disabled
    assert not [button for button in at.button if button.key == "scorecard_save"]


def test_collector_is_turned_away(session):
    # The navigation hides the page from collectors; the page checks the role too.
    collector = make_user(session, "cal", role="collector")
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=60)
    at.session_state["actor"] = collector
    at.run()
    assert not at.exception
    assert "只有催收主管和系统管理员" in at.error[0].value
    assert not at.tabs
