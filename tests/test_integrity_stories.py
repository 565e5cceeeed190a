"""Issue 17's six stories (and a clean control), run through the decision objects as values.

The stories live in benchmarks/_integrity_stories.py so that ``python -m benchmarks integrity``
scores the same set; the raw-signal scenario format does not exist yet.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from benchmarks._integrity_stories import (
    STORIES,
    StoryOutcome,
    epc_cloned_to_a_second_site,
    genuine_delivery_with_gps_gaps,
    phantom_delivery,
    relabelled_and_repledged_at_another_site,
    slow_leak_within_sensor_drift,
    weight_swap_with_all_tags_present,
)
from decisions.alert_types import AlertType
from decisions.shipments import Verdict


@pytest.mark.parametrize("story", STORIES, ids=lambda s: s.__name__)
def test_every_story_ends_as_expected(story: Callable[[], StoryOutcome]) -> None:
    outcome = story()
    assert outcome.as_expected, outcome
    assert not outcome.false_alarm, outcome


def test_weight_swap_with_all_tags_present_is_a_weight_mismatch_only() -> None:
    outcome = weight_swap_with_all_tags_present()
    assert outcome.alerts == (AlertType.WEIGHT_MISMATCH,)
    assert "every tag is present" in outcome.explanation
    assert "rfid: 100 tags" in outcome.explanation and "load_cell:" in outcome.explanation


def test_a_lot_relabelled_and_repledged_elsewhere_is_a_duplicate_identity() -> None:
    outcome = relabelled_and_repledged_at_another_site()
    assert outcome.alerts == (AlertType.DUPLICATE_IDENTITY,)
    assert "LOT-1" in outcome.explanation and "LOT-9" in outcome.explanation


def test_an_epc_cloned_to_a_second_site_names_both_sites() -> None:
    outcome = epc_cloned_to_a_second_site()
    assert outcome.alerts == (AlertType.DUPLICATE_IDENTITY,)
    assert "site-a" in outcome.explanation and "site-b" in outcome.explanation


def test_a_phantom_delivery_is_contradicted() -> None:
    outcome = phantom_delivery()
    assert outcome.verdict == Verdict.CONTRADICTED
    assert "never at buyer-yard" in outcome.explanation


def test_gps_gaps_do_not_make_a_genuine_delivery_contradicted() -> None:
    outcome = genuine_delivery_with_gps_gaps()
    assert outcome.verdict in {Verdict.CORROBORATED, Verdict.PARTLY}


def test_a_slow_leak_within_sensor_drift_does_not_alarm() -> None:
    assert slow_leak_within_sensor_drift().alerts == ()
