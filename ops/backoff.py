"""Exponential backoff with full jitter, as a value object (no sleeping inside)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial_s: float = 0.5
    maximum_s: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    _attempt: int = 0

    def next_delay(self) -> float:
        """Delay before the next attempt: uniform in [0, min(max, initial * factor^n)]."""
        ceiling = min(self.maximum_s, self.initial_s * self.factor**self._attempt)
        self._attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self._attempt = 0

    @property
    def attempts(self) -> int:
        return self._attempt
