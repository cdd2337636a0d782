"""Messages of the followup pages and services (en)."""

MESSAGES: dict[str, str] = {}
