"""How long a tag may go unread before we say it left: a per-tag window that adapts to its reads.

In the spirit of SMURF (Jeffery, Garofalakis, Franklin, VLDB 2006): a fixed window is either too
short for a tag the reader catches a few times a minute (false "missing") or too long for a tag
read thirty times a second (a real departure hidden for minutes). Instead each tag keeps a
running mean of the gaps between its reads, and its window is a multiple of that mean.

The rule (docs/rfid.md derives it): a present tag is read in each inventory round with
probability p, rounds come at rate r, so gaps are geometric with mean mu = 1 / (p r) and

    P(gap > k mu) = (1 - p) ** (r k mu) = (1 - p) ** (k / p) <= exp(-k)

(ln(1 - p) <= -p). Declaring a departure after a silence of ``k * mu`` therefore wrongly
declares a present tag gone with probability at most ``exp(-k)`` per gap, whatever p and r
are. With the default k = 23 that is 1e-10 per gap: a tag read once a second for a year has a
0.3 % chance of one false departure. The window is floored (``min_window_s``: antenna cycling and
short occlusions make reads bunch, which the independence assumption does not cover) and capped
(``max_window_s``: the longest a real departure may stay hidden); until a tag has
``warmup_gaps`` gaps the lot's configured window is used.

A window that passes proves nothing by itself if the reader stopped reading: a reader on a
dead switch port, or with its RF off, reads no tag either. So a departure also needs the
reader's own proof (presence.py): ``proof_cycles`` completed read cycles after the tag's last
read, N = ceil(ln(false_missing_bound) / ln(1 - cycle_read_probability)), so that a present
tag read with at least that probability per cycle is missed by all of them with probability at
most ``false_missing_bound`` (39 cycles for 0.3 and 1e-6). The two conditions hold together;
each bounds a false departure on its own, so the smaller bound applies.

`SmoothingPolicy` holds the rule; `LotPresence` (presence.py) keeps the per-tag state inline
for speed and calls `window_us` on its periodic tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Weight of a new gap in the running mean once a tag has this many gaps; before that the mean
# is the plain average, so the first few gaps count fully.
GAP_AVERAGE_SPAN = 16


@dataclass(frozen=True, slots=True)
class SmoothingPolicy:
    tail_multiplier: float = 23.0  # k: window = k x mean gap; false departure <= e^-k per gap
    min_window_s: float = 5.0
    max_window_s: float = 600.0
    warmup_gaps: int = 8
    # The proof that a reader watched (presence.py): the lowest per-cycle read probability of a
    # present tag it is sized for, and the chance it may leave of missing such a tag.
    cycle_read_probability: float = 0.3
    false_missing_bound: float = 1e-6
    # A reader that completed no read cycle for this long no longer proves anything: tags past
    # their window turn unknown instead of waiting for the proof.
    cycle_silence_s: float = 5.0

    def __post_init__(self) -> None:
        if self.tail_multiplier <= 0:
            raise ValueError("tail_multiplier must be positive")
        if not 0 < self.cycle_read_probability < 1:
            raise ValueError("cycle_read_probability must be in (0, 1)")
        if not 0 < self.false_missing_bound < 1:
            raise ValueError("false_missing_bound must be in (0, 1)")
        if self.cycle_silence_s <= 0:
            raise ValueError("cycle_silence_s must be positive")
        if not 0 < self.min_window_s <= self.max_window_s:
            raise ValueError("need 0 < min_window_s <= max_window_s")
        if self.warmup_gaps < 1:
            raise ValueError("warmup_gaps must be at least 1")

    @property
    def min_window_us(self) -> int:
        return int(self.min_window_s * 1_000_000)

    @property
    def max_window_us(self) -> int:
        return int(self.max_window_s * 1_000_000)

    @property
    def cycle_silence_us(self) -> int:
        return int(self.cycle_silence_s * 1_000_000)

    @property
    def proof_cycles(self) -> int:
        """N: read cycles a reader must complete after a tag's last read before it is missing."""
        return proof_cycles(self.cycle_read_probability, self.false_missing_bound)

    def window_us(self, mean_gap_us: float, gaps: int, warmup_window_us: int) -> int:
        """Silence after which a tag with this read history is declared gone."""
        if gaps < self.warmup_gaps:
            return warmup_window_us
        window = int(self.tail_multiplier * mean_gap_us)
        return min(max(window, self.min_window_us), self.max_window_us)

    def false_departure_bound(self, mean_gap_s: float) -> float:
        """Upper bound on P(a present tag's next gap exceeds its window), per gap."""
        window = min(max(self.tail_multiplier * mean_gap_s, self.min_window_s), self.max_window_s)
        return math.exp(-window / mean_gap_s)

    def detection_bound_s(
        self, mean_gap_s: float, *, move_window_s: float = 0.0, cycles_per_s: float | None = None
    ) -> float:
        """Longest silence before a removed tag (whose reads averaged ``mean_gap_s``) is
        declared gone, excluding the tick interval: its window (never under the lot's move
        window) or, when its reader cycles ``cycles_per_s``, the time to complete the proof
        if that is longer."""
        window = min(max(self.tail_multiplier * mean_gap_s, self.min_window_s), self.max_window_s)
        window = max(window, move_window_s)
        if cycles_per_s is None:
            return window
        # N cycles after the round that read it, which may end at the read itself
        return max(window, (self.proof_cycles + 1) / cycles_per_s)


def false_departure_probability(read_probability: float, rounds_in_window: float) -> float:
    """Exact P(no read in a window) for Bernoulli reads: (1 - p) ** rounds."""
    if not 0 < read_probability <= 1:
        raise ValueError("read probability must be in (0, 1]")
    if read_probability == 1:
        return 0.0
    return math.exp(rounds_in_window * math.log1p(-read_probability))


def updated_mean_gap(mean_gap_us: float, gaps_before: int, gap_us: int) -> float:
    """The running mean after one more gap (what presence.py does inline per read)."""
    span = gaps_before + 1 if gaps_before + 1 < GAP_AVERAGE_SPAN else GAP_AVERAGE_SPAN
    return mean_gap_us + (gap_us - mean_gap_us) / span


def proof_cycles(read_probability: float, bound: float) -> int:
    """The fewest cycles N with (1 - p) ** N <= bound."""
    if not 0 < read_probability < 1 or not 0 < bound < 1:
        raise ValueError("need 0 < read_probability < 1 and 0 < bound < 1")
    n = math.ceil(math.log(bound) / math.log1p(-read_probability))
    # guard the float rounding at the boundary
    while n > 1 and (1 - read_probability) ** (n - 1) <= bound:
        n -= 1
    return max(1, n)
