"""What to do after a delivery attempt: pure, fed the outcome, the history and a clock value.

Theory: a 2xx delivers. 410 Gone disables the endpoint (the receiver asked us to stop).
Anything else (3xx: redirects are never followed; 4xx; 5xx; timeouts; refused connections)
is retried with exponential backoff and jitter, or exactly after ``Retry-After`` when the
receiver names a time. Retries never stop on a count: an endpoint that has failed without a
single success for ``disable_after`` (a day) is disabled and the operator is told, and its
pending deliveries wait for a replay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

FIRST_DELAY = timedelta(seconds=5)
MAX_DELAY = timedelta(hours=1)
MAX_RETRY_AFTER = timedelta(hours=24)
DISABLE_AFTER = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int | None  # None: no HTTP answer (timeout, refused, blocked target)
    retry_after: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Literal["delivered", "retry", "disable"]
    next_attempt_at: datetime | None = None
    reason: str = ""


def backoff(attempts: int, rng: random.Random) -> timedelta:
    """Delay before attempt ``attempts + 1``: half fixed, half jitter, doubling to an hour."""
    ceiling = min(MAX_DELAY, FIRST_DELAY * (2 ** min(attempts - 1, 30)))
    return ceiling / 2 + ceiling / 2 * rng.random()


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Seconds or an HTTP date, capped; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            delay = parsedate_to_datetime(value) - now
        except (TypeError, ValueError):
            return None
    return max(timedelta(0), min(delay, MAX_RETRY_AFTER))


def judge(
    outcome: Outcome, *, attempts: int, failing_since: datetime | None, now: datetime,
    rng: random.Random, disable_after: timedelta = DISABLE_AFTER,
) -> Verdict:
    """``attempts`` counts this one; ``failing_since`` is the endpoint's first unanswered try."""
    status = outcome.status
    if status is not None and 200 <= status < 300:
        return Verdict("delivered")
    if status == 410:
        return Verdict("disable", reason="receiver answered 410 Gone")
    described = outcome.error or f"HTTP {status}"
    if failing_since is not None and now - failing_since >= disable_after:
        return Verdict("disable", reason=f"failing since {failing_since.isoformat()}: "
                                         f"{described}")
    delay = retry_after(outcome.retry_after, now) if status in (429, 503) else None
    if delay is None:
        delay = backoff(attempts, rng)
    return Verdict("retry", now + delay, described)
