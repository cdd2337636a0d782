"""Documents attached to a case file: uploaded, listed and downloaded, all audited.

A file is kept in the database, or under RECOVA_ATTACHMENT_DIR when that setting is
set. Either way the row keeps its size and SHA-256, and a download checks them.
"""

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Case, User
from db.models_followup import CaseAttachment
from recova.errors import InvalidInput, NotFound
from recova.settings import get_settings
from services import audit
from services.actors import Actor, require_role
from services.cases import check_access

logger = logging.getLogger(__name__)

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
UPLOADER_ROLES = ("admin", "manager", "team_lead", "collector")


@dataclass
class AttachmentRow:
    id: int
    file_name: str
    content_type: str | None
    size: int
    sha256: str
    uploaded_by: str | None
    created_at: datetime


def _clean_name(file_name: str) -> str:
    """Return the file's base name without folders or control characters."""
    name = re.split(r"[\\/]", file_name.strip())[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()
    if not name or name in (".", ".."):
        raise InvalidInput("attachment_name_invalid", name=file_name)
    return name[-255:]


def _case_for(session: Session, actor: Actor, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("case_not_found", case=case_id)
    check_access(case, actor)
    return case


def _write_file(folder: Path, case_id: int, digest: str, content: bytes) -> Path:
    """Write `content` under `folder/<case id>/` and return its path.

    The name is the content's SHA-256, so the same file uploaded twice is one file,
    and a rename makes the write atomic.
    """
    target_dir = folder / str(case_id)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / digest
    if not target.exists():
        handle, temporary = tempfile.mkstemp(dir=target_dir, prefix=".upload-")
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(temporary, target)
    return target


def add_attachment(
    *,
    session: Session,
    actor: Actor,
    case_id: int,
    file_name: str,
    content: bytes,
    content_type: str | None = None,
) -> AttachmentRow:
    """Store a document on a case the actor may work, and audit the upload."""
    require_role(actor, *UPLOADER_ROLES)
    case = _case_for(session, actor, case_id)
    name = _clean_name(file_name)
    if not content:
        raise InvalidInput("attachment_empty", name=name)
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput(
            "attachment_too_large",
            name=name,
            size_mb=f"{len(content) / 1024 / 1024:.1f}",
            limit_mb=MAX_ATTACHMENT_BYTES // 1024 // 1024,
        )

    digest = hashlib.sha256(content).hexdigest()
    folder = get_settings().attachment_dir
    row = CaseAttachment(
        case_id=case.id,
        file_name=name,
        content_type=(content_type or None),
        size=len(content),
        sha256=digest,
        uploaded_by=actor.id,
    )
    if folder is None:
        row.content = content
    else:
        # NOTE: a failed commit after this write leaves the file without a row.
        row.stored_path = str(_write_file(Path(folder), case.id, digest, content))
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "attachment_added",
        "case_attachment",
        row.id,
        after={"file_name": name, "size": len(content), "sha256": digest},
        detail={"case_id": case.id, "stored": "folder" if folder else "database"},
    )
    session.commit()
    logger.info("attachment %s added to case %s by %s", row.id, case.id, actor.username)
    return AttachmentRow(
        id=row.id,
        file_name=name,
        content_type=row.content_type,
        size=row.size,
        sha256=digest,
        uploaded_by=actor.username,
        created_at=row.created_at,
    )


def get_attachment(
    *, session: Session, actor: Actor, attachment_id: int
) -> tuple[str, bytes]:
    """Return an attachment's name and bytes, after the case access check; audited."""
    row = session.get(CaseAttachment, attachment_id)
    if row is None:
        raise NotFound("attachment_not_found", id=attachment_id)
    _case_for(session, actor, row.case_id)
    if row.stored_path:
        path = Path(row.stored_path)
        if not path.is_file():
            raise NotFound("attachment_file_missing", name=row.file_name, path=path)
        content = path.read_bytes()
    else:
        content = row.content or b""
    if hashlib.sha256(content).hexdigest() != row.sha256:
        raise InvalidInput("attachment_damaged", name=row.file_name)
    audit.record(
        session,
        actor,
        "attachment_downloaded",
        "case_attachment",
        row.id,
        detail={"case_id": row.case_id, "file_name": row.file_name},
    )
    session.commit()
    return row.file_name, content


def attachment_rows(session: Session, case_id: int) -> list[AttachmentRow]:
    """Return a case's attachments without their bytes; the caller checked access."""
    rows = session.execute(
        select(
            CaseAttachment.id,
            CaseAttachment.file_name,
            CaseAttachment.content_type,
            CaseAttachment.size,
            CaseAttachment.sha256,
            User.username.label("uploaded_by"),
            CaseAttachment.created_at,
        )
        .outerjoin(User, User.id == CaseAttachment.uploaded_by)
        .where(CaseAttachment.case_id == case_id)
        .order_by(CaseAttachment.created_at.desc(), CaseAttachment.id.desc())
    ).mappings()
    return [AttachmentRow(**row) for row in rows]
