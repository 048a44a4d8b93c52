"""Failed logins and planner sessions, in the database so that every worker sees the same.

A count kept in one worker's memory gives an attacker a fresh budget per
worker and forgets it at every restart; kept here, every worker of every
machine on the database counts the same failures and honours the same logout.

Throttling (:class:`LoginThrottle`) is built so that an attacker cannot turn
it against the planner:

- Failures are counted per *(account, address)* and per *address* (for a
  sprayer trying many user names); past a few free failures each one doubles
  that key's wait (:class:`ThrottlePolicy`). Only addresses that failed wait:
  the correct password from any other address is always checked.
- Failures are also counted per *account* across all addresses. Past the
  account's budget the account is *under attack*, and then any address that
  has failed against it at all waits (a minute, doubling), so a guesser spread
  over many addresses gets about six guesses per address in the first hour
  and one an hour after that, while an address that has not failed (the
  planner's) is never refused. (One address alone gets 16 in its first hour.
  ``benchmarks/login_guessing.py`` prints these figures.) No budget can stop
  a guesser with ever new addresses without also refusing the planner at a
  new one; that part is the reverse proxy's (rate limits) and the password's.
- A client that once logged in carries a device id (the web layer's signed
  cookie); its failures count against that device instead of its address, so a
  guesser sharing the planner's address (an office NAT, or a reverse proxy
  nobody told the server about) cannot make the planner wait either.
- A success clears the address's and the device's counts (not the account's:
  the planner logging in does not end an attack).
- Attempts refused while waiting are not checked and not counted, so a flood
  neither extends anyone's wait nor grows the table.

Two workers checking the same key at the same instant may both be let
through: the race is worth at most one guess per concurrent request, which the
back-off then charges for.

Sessions (:func:`open_session`, :func:`find_session`): the cookie carries a
random token; the table keeps only its SHA-256, so a copy of the table signs
nobody in. A session is refused once revoked (logout), once its ``account``
(the web layer passes the account *with a digest of its credentials*, so a
changed password is another account) no longer matches, after an idle time
and after an absolute lifetime.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, or_, select, update

from .database import Database
from .schema import LoginFailureRow, PlannerSessionRow, as_utc, utcnow

__all__ = [
    "LoginThrottle",
    "PlannerSession",
    "ThrottlePolicy",
    "client_key",
    "find_session",
    "open_session",
    "prune_sessions",
    "revoke_other_accounts",
    "revoke_session",
]


def client_key(address: str | None) -> str:
    """The part of a client address that one party controls, as the throttle's key.

    An IPv6 client is given a whole /64 by its provider, so counting single
    IPv6 addresses would hand it billions of fresh budgets: the /64 is the
    key. An IPv4-mapped IPv6 address is its IPv4 address. Anything that is
    not an address (a Unix socket, a test client) is hashed to a short key.
    """
    raw = (address or "").strip()
    try:
        parsed = ipaddress.ip_address(raw)
    except ValueError:
        return "other-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def _account_key(account: str) -> str:
    # Typed user names are arbitrary text: keep a fixed-length digest, not the text.
    return hashlib.sha256(account.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures are free and how fast the waits grow.

    Attributes:
        free: failures per (account, address), or per device, before the first wait.
        free_per_address: failures per address, over every account typed, before a wait.
        base_delay: the first wait, in seconds; each further failure doubles it.
        max_delay: no wait is longer than this.
        memory: failures older than this (seconds) are forgotten and pruned.
        account_budget: failures of one account, over every address, within
            ``account_window`` seconds that put the account under attack.
        account_window: seconds over which ``account_budget`` is counted.
        attack_delay: under attack, an address's wait after its first failure;
            it doubles with each further one.
    """

    free: int = 5
    free_per_address: int = 10
    base_delay: float = 1.0
    max_delay: float = 3600.0
    memory: float = 24 * 3600.0
    account_budget: int = 20
    account_window: float = 3600.0
    attack_delay: float = 60.0

    def backoff(self, failures: int, free: int, base: float) -> float:
        """The wait after ``failures`` failures of which ``free`` cost nothing."""
        if failures < free:
            return 0.0
        return min(self.max_delay, base * 2.0 ** min(failures - free, 64))


@dataclass(frozen=True)
class _Keys:
    pair: str
    address: str | None
    account: str


class LoginThrottle:
    """Failed logins of one kind (``scope``: the planner form, the API), counted in the database.

    Each scope has keys of its own, so failures at the API never make the
    login form wait, and the other way round.
    """

    #: How often (seconds) one throttle deletes every failure older than the policy's memory.
    PRUNE_EVERY = 600.0

    def __init__(
        self, database: Database, scope: str, policy: ThrottlePolicy | None = None
    ) -> None:
        self.database = database
        self.scope = scope
        self.policy = policy or ThrottlePolicy()
        self._pruned_at: datetime | None = None

    def _keys(self, account: str, address: str | None, device: str | None) -> _Keys:
        account_part = _account_key(account)
        if device is not None:
            # A known device is judged on its own failures, wherever it connects from.
            device_part = hashlib.sha256(device.encode("utf-8")).hexdigest()[:24]
            return _Keys(
                f"{self.scope}:device:{device_part}", None, f"{self.scope}:acct:{account_part}"
            )
        client = client_key(address)
        return _Keys(
            f"{self.scope}:pair:{account_part}:{client}",
            f"{self.scope}:addr:{client}",
            f"{self.scope}:acct:{account_part}",
        )

    def retry_after(
        self,
        account: str,
        address: str | None,
        *,
        device: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """Seconds until this client may try ``account`` again; 0 when it may try now.

        Args:
            account: the user name typed.
            address: the client's address (after the trusted proxies).
            device: the id of a device that logged in to ``account`` before, if any.
            now: the current time (tests).
        """
        now = now or utcnow()
        policy = self.policy
        keys = self._keys(account, address, device)
        since = now - timedelta(seconds=policy.memory)
        attack_since = now - timedelta(seconds=policy.account_window)
        wanted = [k for k in (keys.pair, keys.address, keys.account) if k is not None]
        query = (
            select(
                LoginFailureRow.key,
                func.count(),
                func.sum(case((LoginFailureRow.failed_at >= attack_since, 1), else_=0)),
                func.max(LoginFailureRow.failed_at),
            )
            .where(LoginFailureRow.key.in_(wanted), LoginFailureRow.failed_at >= since)
            .group_by(LoginFailureRow.key)
        )
        with self.database.read() as session:
            counts = {
                key: (int(n), int(recent or 0), as_utc(last))
                for key, n, recent, last in session.execute(query)
            }

        def wait_for(key: str | None, delay: float) -> float:
            if key is None or key not in counts or delay <= 0:
                return 0.0
            return (counts[key][2] - now).total_seconds() + delay

        pair_failures = counts.get(keys.pair, (0, 0, now))[0]
        waits = [wait_for(keys.pair, policy.backoff(pair_failures, policy.free, policy.base_delay))]
        if keys.address is not None:
            address_failures = counts.get(keys.address, (0, 0, now))[0]
            waits.append(
                wait_for(
                    keys.address,
                    policy.backoff(address_failures, policy.free_per_address, policy.base_delay),
                )
            )
            under_attack = counts.get(keys.account, (0, 0, now))[1] >= policy.account_budget
            if under_attack:
                waits.append(
                    wait_for(keys.pair, policy.backoff(pair_failures, 1, policy.attack_delay))
                )
        longest = max(waits)
        return 0 if longest <= 0 else int(longest) + (0 if longest.is_integer() else 1)

    def failed(
        self,
        account: str,
        address: str | None,
        *,
        device: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Count a failed attempt against the client's keys and the account."""
        now = now or utcnow()
        keys = self._keys(account, address, device)
        cutoff = now - timedelta(seconds=self.policy.memory)
        rows = [k for k in (keys.pair, keys.address, keys.account) if k is not None]
        with self.database.write() as session:
            session.add_all(LoginFailureRow(key=key, failed_at=now) for key in rows)
            session.execute(
                delete(LoginFailureRow).where(
                    LoginFailureRow.key.in_(rows), LoginFailureRow.failed_at < cutoff
                )
            )
            if self._prune_due(now):
                session.execute(
                    delete(LoginFailureRow).where(
                        LoginFailureRow.key.like(f"{self.scope}:%"),
                        LoginFailureRow.failed_at < cutoff,
                    )
                )

    def _prune_due(self, now: datetime) -> bool:
        """Whether to sweep the whole scope now: once per :data:`PRUNE_EVERY`, not per failure."""
        last = self._pruned_at
        if last is not None and abs((now - last).total_seconds()) < self.PRUNE_EVERY:
            return False
        self._pruned_at = now
        return True

    def succeeded(self, account: str, address: str | None, *, device: str | None = None) -> None:
        """Forget this client's failures (its address or device); the account's count stays."""
        keys = self._keys(account, address, device)
        cleared = [k for k in (keys.pair, keys.address) if k is not None]
        with self.database.write() as session:
            session.execute(delete(LoginFailureRow).where(LoginFailureRow.key.in_(cleared)))


# -- sessions ---------------------------------------------------------------------------

#: A session not used for this long (seconds) is refused.
SESSION_IDLE = 2 * 3600.0
#: No session lasts longer than this (seconds): a working day.
SESSION_LIFETIME = 12 * 3600.0
#: ``seen_at`` is written at most this often (seconds), not on every page.
TOUCH_EVERY = 60.0


@dataclass(frozen=True)
class PlannerSession:
    """A signed-in planner, as the web layer needs it."""

    id: str
    account: str
    csrf_token: str
    created_at: datetime


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_session(
    db: Database, account: str, now: datetime | None = None
) -> tuple[str, PlannerSession]:
    """Start a session for ``account``.

    Returns:
        The token for the cookie (shown once, never stored) and the session.
    """
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = PlannerSessionRow(
        id=_session_id(token),
        account=account,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        seen_at=now,
    )
    with db.write() as session:
        session.add(row)
    return token, PlannerSession(row.id, account, row.csrf_token, now)


def find_session(
    db: Database,
    token: str,
    account: str,
    *,
    idle: float = SESSION_IDLE,
    lifetime: float = SESSION_LIFETIME,
    now: datetime | None = None,
) -> PlannerSession | None:
    """The live session for a cookie's token, or None if revoked, expired or of another account."""
    now = now or utcnow()
    with db.read() as session:
        row = session.get(PlannerSessionRow, _session_id(token))
        if row is None or row.revoked_at is not None or row.account != account:
            return None
        created, seen = as_utc(row.created_at), as_utc(row.seen_at)
        csrf = row.csrf_token
    if (now - created).total_seconds() >= lifetime or (now - seen).total_seconds() >= idle:
        return None
    if (now - seen).total_seconds() >= TOUCH_EVERY:
        with db.write() as session:
            session.execute(
                update(PlannerSessionRow)
                .where(PlannerSessionRow.id == _session_id(token))
                .values(seen_at=now)
            )
    return PlannerSession(_session_id(token), account, csrf, created)


def revoke_session(db: Database, token: str, now: datetime | None = None) -> bool:
    """End one session (logout). Returns whether a live session was ended."""
    with db.write() as session:
        result = session.execute(
            update(PlannerSessionRow)
            .where(
                PlannerSessionRow.id == _session_id(token), PlannerSessionRow.revoked_at.is_(None)
            )
            .values(revoked_at=now or utcnow())
        )
    return bool(getattr(result, "rowcount", 0))


def revoke_other_accounts(db: Database, account: str, now: datetime | None = None) -> int:
    """End every live session that is not ``account``'s: the credentials changed.

    Returns:
        How many sessions were ended.
    """
    with db.write() as session:
        result = session.execute(
            update(PlannerSessionRow)
            .where(PlannerSessionRow.account != account, PlannerSessionRow.revoked_at.is_(None))
            .values(revoked_at=now or utcnow())
        )
    return int(getattr(result, "rowcount", 0))


def prune_sessions(
    db: Database, lifetime: float = SESSION_LIFETIME, now: datetime | None = None
) -> int:
    """Delete sessions that can no longer be used: revoked or started over a lifetime ago.

    A revoked row is kept for one lifetime, so a replayed cookie is still
    known to be revoked rather than merely unknown (both are refused).
    """
    cutoff = (now or utcnow()) - timedelta(seconds=lifetime)
    with db.write() as session:
        result = session.execute(
            delete(PlannerSessionRow).where(
                or_(PlannerSessionRow.created_at < cutoff, PlannerSessionRow.revoked_at < cutoff)
            )
        )
    return int(getattr(result, "rowcount", 0))
