"""Messages of the score pages and services (en)."""

MESSAGES: dict[str, str] = {}
