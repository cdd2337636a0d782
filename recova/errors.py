"""The one error family that services raise and callers translate."""

from typing import Any


class RecovaError(Exception):
    """A failure a user can act on: a message id from the catalogs plus its values."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params

    def message(self, language: str = "en") -> str:
        from recova.i18n import CATALOGS, translate

        params = dict(self.params)
        # A field named by its attribute reads better by its label, where one exists.
        field = params.get("field")
        if isinstance(field, str) and f"field.{field}" in CATALOGS.get(language, {}):
            params["field"] = translate(f"field.{field}", language)
        return translate(f"error.{self.code}", language, **params)

    def __str__(self) -> str:
        return self.message("en")


class NotFound(RecovaError):
    """The object does not exist, or the caller may not know that it does."""


class PermissionDenied(RecovaError):
    """The caller's role or ownership does not allow the action."""


class Conflict(RecovaError):
    """Someone else changed the object first, or the action was already done."""


class InvalidInput(RecovaError):
    """The input breaks a rule; the message names the value and the fix."""
