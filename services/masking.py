"""Masks for personal data that collectors see (ID numbers, phones)."""

PII_FIELDS = ("id_number", "phone", "contact_phone", "phones")


def mask_id_number(value: str | None) -> str | None:
    if not value:
        return value
    if len(value) <= 10:
        return value[:2] + "*" * max(len(value) - 4, 0) + value[-2:]
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(value: str | None) -> str | None:
    if not value:
        return value
    if len(value) <= 7:
        return value[:2] + "*" * (len(value) - 2)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_field(field: str | None, value: str | None) -> str | None:
    """Mask `value` when `field` contains an ID number or a phone."""
    if field == "id_number":
        return mask_id_number(value)
    if field in ("phone", "contact_phone"):
        return mask_phone(value)
    return value
