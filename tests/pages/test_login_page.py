"""Login, first-run setup and role-based navigation, driven through AppTest."""

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from recova.i18n import EN
from services import auth
from tests.conftest import APP_FILE as APP
from tests.factories import PASSWORD, make_user


def fresh_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=30)


def test_first_run_shows_setup(session):
    at = fresh_app().run()
    assert not at.exception
    assert at.text_input(key="setup_username")


def test_setup_creates_admin_and_logs_in(session):
    at = fresh_app().run()
    at.text_input(key="setup_username").input("boss")
    at.text_input(key="setup_password").input(PASSWORD)
    at.text_input(key="setup_confirm").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["actor"].username == "boss"
    assert not auth.needs_first_admin(session=session)


def test_setup_password_mismatch(session):
    at = fresh_app().run()
    at.text_input(key="setup_username").input("boss")
    at.text_input(key="setup_password").input(PASSWORD)
    at.text_input(key="setup_confirm").input(PASSWORD + "x")
    at.button[0].click().run()
    assert at.error
    assert auth.needs_first_admin(session=session)


def test_login_wrong_password_shows_error(session):
    make_user(session, "boss", role="admin")
    at = fresh_app().run()
    at.text_input(key="login_username").input("boss")
    at.text_input(key="login_password").input("not the password")
    at.button[0].click().run()
    assert at.error
    assert "actor" not in at.session_state


def test_login_shows_role_pages(session):
    make_user(session, "boss", role="admin")
    at = fresh_app().run()
    at.text_input(key="login_username").input("boss")
    at.text_input(key="login_password").input(PASSWORD)
    at.button[0].click().run()
    assert at.session_state["actor"].role == "admin"
    assert auth.resolve(session=session, token=at.session_state["auth_token"])


def test_expired_token_shows_login(session):
    at = fresh_app()
    at.session_state["auth_token"] = "not-a-live-token"
    make_user(session, "boss", role="admin")
    at.run()
    assert at.text_input(key="login_username")
    assert at.info


def logged_in(session, username: str, role: str) -> AppTest:
    make_user(session, username, role=role)
    token = auth.login(session=session, username=username, password=PASSWORD).token
    at = fresh_app()
    at.session_state["auth_token"] = token
    return at.run()


def test_collector_sees_no_intake_page(session):
    at = logged_in(session, "ann", "collector")
    assert not at.exception
    with pytest.raises(ValueError, match="Known pages"):
        at.switch_page("pages/intake.py")


def test_language_switch_to_english(session):
    # AppTest (streamlit 1.67) runs only the page script on later runs of an
    # st.navigation app, so the sidebar choice is made before the first run.
    from db.models import User

    make_user(session, "boss", role="admin")
    token = auth.login(session=session, username="boss", password=PASSWORD).token
    at = fresh_app()
    at.session_state["auth_token"] = token
    at.session_state["sidebar_language"] = "en"
    at.run()
    session.expire_all()
    assert session.scalar(select(User.language).where(User.username == "boss")) == "en"
    again = fresh_app()
    again.session_state["auth_token"] = token
    again.run()
    # The admin's first page is the KPI page; its title is in English now.
    english = {EN["nav.kpi"], EN["kpi.title"]} if "kpi.title" in EN else {EN["nav.kpi"]}
    assert any(title.value in english for title in again.title)
