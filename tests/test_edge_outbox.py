"""The durable outbox: sequence numbers survive restarts, nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from edge.outbox import Outbox


def _put(outbox: Outbox, n: int, *, event: bool = False, size: int = 10) -> list[int]:
    return [
        outbox.put("t", lambda seq: f"{seq:0{size}d}".encode(), is_event=event) for _ in range(n)
    ]


def test_sequence_is_strictly_increasing_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    first = _put(box, 3)
    box.confirm([(1, 3)])
    will = box.allocate_seq()
    box.close()
    box = Outbox(path)
    second = _put(box, 2)
    assert first == [1, 2, 3] and will == 4 and second == [5, 6]
    assert [m.seq for m in box.pending(after=0, limit=10)] == [5, 6]


def test_payload_is_built_with_its_own_sequence(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    _put(box, 2)
    assert [m.payload for m in box.pending(after=0, limit=10)] == [b"0000000001", b"0000000002"]


def test_confirmed_messages_are_forgotten_and_depth_follows(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    seqs = _put(box, 5)
    assert box.confirm([(1, 2)]) == 2
    assert box.confirm([(1, 1)]) == 0  # a repeated confirmation changes nothing
    assert box.depth == 3
    assert box.bytes == 30
    assert [m.seq for m in box.pending(after=0, limit=10)] == seqs[2:]
    assert [m.seq for m in box.pending(after=0, up_to=4, limit=10)] == [3, 4]


def test_a_confirmation_beyond_the_allocated_seqs_forgets_nothing_beyond_them(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.db")
    _put(box, 5)
    assert box.confirm([(7, 2**63 - 1)]) == 0  # never allocated: nothing to forget
    assert box.confirm([(4, 2**63 - 1)]) == 2  # clamped to 4..5
    assert box.depth == 3
    assert box.beyond_allocated == 2  # counted as suspicious
    later = box.put("t", lambda seq: b"x" * 10, is_event=True)
    assert later == 6 and box.depth == 4  # the next message is not pre-confirmed


def test_a_puback_is_not_enough_to_forget(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    _put(box, 4)
    box.mark_sent([1, 2, 3, 4])
    box.mark_acked([1, 2, 3])
    assert box.pending(after=0, limit=10) == []
    assert box.counts() == {"unsent": 0, "sent": 1, "awaiting_confirmation": 3}
    # The connection drops: what the broker never acked is sent again, acked rows wait.
    assert box.resend_unacked() == 1
    assert [m.seq for m in box.pending(after=0, limit=10)] == [4]
    assert box.depth == 4


def test_acked_but_never_confirmed_is_resent_once_later_ones_are_confirmed(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    _put(box, 3)
    box.mark_sent([1, 2, 3])
    box.mark_acked([1, 2, 3])
    assert box.resend_lost(sent_before_us=2**62) == 0  # nothing confirmed yet: no evidence
    box.confirm([(2, 3)])  # the cloud has 2 and 3 but not 1: the broker lost it
    assert box.resend_lost(sent_before_us=0) == 0  # still within its grace period
    assert box.resend_lost(sent_before_us=2**62) == 1
    assert [m.seq for m in box.pending(after=0, limit=10)] == [1]


def test_full_outbox_drops_oldest_telemetry_never_events(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path, max_bytes=100)
    events = _put(box, 3, event=True)  # 30 bytes
    telemetry = _put(box, 7)  # 70 bytes: exactly full
    newer = _put(box, 2)  # 20 bytes over: the two oldest telemetry rows go
    kept = [m.seq for m in box.pending(after=0, limit=100)]
    assert kept == events + telemetry[2:] + newer
    assert box.dropped_telemetry == 2
    more_events = _put(box, 5, event=True)  # events past the cap: telemetry makes room
    assert all(s in [m.seq for m in box.pending(after=0, limit=100)] for s in events + more_events)
    dropped = box.dropped_telemetry
    box.close()
    assert Outbox(path, max_bytes=100).dropped_telemetry == dropped  # the counter persists


def test_events_alone_may_exceed_the_cap(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=50)
    seqs = _put(box, 10, event=True)
    assert [m.seq for m in box.pending(after=0, limit=100)] == seqs
    assert box.dropped_telemetry == 0


def test_sigkill_loses_nothing_that_put_returned(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-stream: every seq it reported is in the outbox."""
    path = tmp_path / "o.db"
    script = textwrap.dedent(f"""
        import sys
        from edge.outbox import Outbox
        box = Outbox(__import__("pathlib").Path({str(path)!r}))
        while True:
            seq = box.put("t", lambda s: b"x" * 200, is_event=False)
            print(seq, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parent.parent)
    assert proc.stdout is not None
    reported = []
    for line in proc.stdout:
        reported.append(int(line))
        if len(reported) == 2000:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    stored = {m.seq for m in Outbox(path).pending(after=0, limit=1_000_000)}
    assert set(reported) <= stored
    assert stored == set(range(1, max(stored) + 1))  # and no holes
