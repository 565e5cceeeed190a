"""Process settings for the long-running services on the alert path (ingest, webhook sender,
edge agent): what keeps an event's milliseconds from going to the interpreter's housekeeping.

Measured under the alerts benchmark (docs/alerts.md): a full garbage collection walks every
object the process holds, and after start-up that is the imported libraries' (about 60,000
tracked objects in ingest, 65,000 in the agent): 80-100 ms on the shared two-core machine, in
which the event loop, and the event it is carrying, stands still. Ingest's bulk
lane decodes and builds COPY text in worker threads; the event loop then waits for the
interpreter lock up to the switch interval (5 ms by default) after every database round trip
of the event's transaction, which has about twenty.
"""

from __future__ import annotations

import gc
import sys

# How long a thread may hold the interpreter lock while another waits for it. 1 ms: the event
# lane's round trips wait a fifth as long; the bulk lane's threads still run in slices large
# enough that the hand-overs cost little (10,000 readings/s are stored either way).
EVENT_LOOP_SWITCH_INTERVAL_S = 0.001


def settle_after_start_up() -> None:
    """Collect once, then leave everything alive now out of later collections (gc.freeze):
    the modules, classes and settings loaded at start-up live as long as the process, and a
    full collection no longer walks them (a pause of tens of ms becomes a few)."""
    gc.collect()
    gc.freeze()


def favour_the_event_loop() -> None:
    """Shorten the interpreter-lock slice for a process whose event loop carries events while
    its worker threads do bulk CPU work (ingest)."""
    sys.setswitchinterval(EVENT_LOOP_SWITCH_INTERVAL_S)
