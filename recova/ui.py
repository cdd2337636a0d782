"""Helpers shared by the Streamlit pages: the current user, translation, errors."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import streamlit as st
from sqlalchemy.orm import Session

from db.engine import session_factory
from recova.errors import RecovaError
from recova.i18n import make_translator
from recova.settings import get_settings
from services.actors import Actor

logger = logging.getLogger(__name__)

TOKEN_KEY = "auth_token"
LANGUAGE_KEY = "language"

T = TypeVar("T")


@contextmanager
def db_session() -> Iterator[Session]:
    """Open a database session for one service call."""
    with session_factory()() as session:
        yield session


def language() -> str:
    actor = st.session_state.get("actor")
    if actor is not None:
        return actor.language
    return st.session_state.get(LANGUAGE_KEY, get_settings().default_language)


def t(key: str, /, **params: Any) -> str:
    return make_translator(language())(key, **params)


def current_actor() -> Actor | None:
    """Return the logged-in actor, or None when the session expired or is missing."""
    # NOTE: the token lives only in this browser tab's Streamlit session, so a page
    # reload or a typed URL requires the password again.
    from services import auth

    token = st.session_state.get(TOKEN_KEY)
    if not token:
        return None
    with db_session() as session:
        actor = auth.resolve(session=session, token=token)
    if actor is None:
        st.session_state.pop(TOKEN_KEY, None)
        st.session_state.pop("actor", None)
        st.session_state["session_expired"] = True
        return None
    st.session_state["actor"] = actor
    return actor


def require_actor() -> Actor:
    actor = st.session_state.get("actor")
    if actor is None:
        st.stop()
    return actor


def call(service: Callable[..., T], /, **kwargs: Any) -> T | None:
    """Run a service in its own session and show a RecovaError as a message."""
    try:
        with db_session() as session:
            return service(session=session, **kwargs)
    except RecovaError as error:
        st.error(error.message(language()))
        return None


def show_error(error: RecovaError) -> None:
    st.error(error.message(language()))
