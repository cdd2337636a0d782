"""Small helpers that create test data through the services."""

from sqlalchemy.orm import Session

from services.actors import Actor
from services.users import NewUser, add_user

PASSWORD = "correct horse battery"


def make_user(
    session: Session, username: str, role: str = "collector", **fields
) -> Actor:
    """Create a user (the first one becomes the setup admin) and return its actor."""
    from services.auth import needs_first_admin

    creator = None if needs_first_admin(session=session) else Actor.operator()
    if creator is None and role != "admin":
        add_user(
            session=session,
            actor=None,
            data=NewUser(username="root-admin", password=PASSWORD, role="admin"),
        )
        creator = Actor.operator()
    user = add_user(
        session=session,
        actor=creator,
        data=NewUser(username=username, password=PASSWORD, role=role, **fields),
    )
    return Actor.from_user(user)
