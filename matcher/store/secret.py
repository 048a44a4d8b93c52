"""The instance secret: one per database, so every worker of every machine signs alike.

Sessions, form tokens and share links are signed with it; two machines on one
database must hold the same one, so it lives in the database, made once. The
first process to ask inserts a fresh one; one racing it (another worker,
another machine) loses the insert on the primary key and reads the winner's.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from .database import Database
from .schema import InstanceSecretRow, utcnow

SECRET_NAME = "secret_key"


def instance_secret(
    db: Database, name: str = SECRET_NAME, *, seed: Callable[[], str | None] | None = None
) -> str:
    """The database's secret ``name``, made on first use.

    Args:
        seed: gives the value to store when there is none yet (an older
            instance's secret file, so its signed-in planners stay signed in);
            by default, or when it gives ``None``, 32 random bytes.
    """
    with db.read() as session:
        row = session.get(InstanceSecretRow, name)
        if row is not None:
            return row.value
    value = (seed() if seed is not None else None) or secrets.token_hex(32)
    try:
        with db.write() as session:
            existing = session.get(InstanceSecretRow, name)
            if existing is not None:
                return existing.value
            session.add(InstanceSecretRow(name=name, value=value, created_at=utcnow()))
    except IntegrityError:
        pass  # another process inserted it first: theirs is the secret
    with db.read() as session:
        row = session.get(InstanceSecretRow, name)
        assert row is not None, "the secret was just stored"
        return row.value
