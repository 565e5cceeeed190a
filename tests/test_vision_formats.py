"""Plate formats per region (with look-alike repair only where the format demands it) and GS1
element strings, checked against plates and labels rendered by firmware_sim."""

from __future__ import annotations

import random

import pytest

from decisions.plate_format import fixed_length, foreign, match, normalise
from edge.vision import gs1
from firmware_sim.camera.plates import random_plate
from firmware_sim.camera.scenes import random_pallet_label


def test_every_rendered_plate_text_is_valid_in_its_region_and_in_auto() -> None:
    rng = random.Random(11)
    for _ in range(400):
        spec = random_plate(rng)
        found = match(spec.shown, spec.region)
        assert found is not None, spec
        assert found.text == spec.text
        assert found.repairs == 0
        auto = match(spec.shown)
        assert auto is not None and auto.text == spec.text, spec


@pytest.mark.parametrize(
    ("raw", "expected", "fmt"),
    [
        ("京A·12345", "京A12345", "cn_standard"),
        ("粤B·D12345", "粤BD12345", "cn_new_energy_small"),
        ("沪A·12345D", "沪A12345D", "cn_new_energy_large"),
        ("京A·1234O", "京A12340", "cn_standard"),  # China issues no O: it must be a zero
        ("京8·12345", "京B12345", "cn_standard"),  # second place is a letter: 8 is B
        ("苏E·I2345", "苏E12345", "cn_standard"),  # no I on Chinese plates: a one
        ("粤B·DF1234", "粤BDF1234", "cn_new_energy_small"),
        ("AB-123-CD", "AB123CD", "eu_fr_it"),
        ("A8-123-CD", "AB123CD", "eu_fr_it"),  # letter slot: 8 is B
        ("AB-I23-CD", "AB123CD", "eu_fr_it"),  # digit slot: I is 1
        ("1234 BCD", "1234BCD", "eu_es"),
        ("7ABC123", "7ABC123", "us_ca"),
    ],
)
def test_match_repairs_only_what_the_slot_demands(raw: str, expected: str, fmt: str) -> None:
    found = match(raw)
    assert found is not None
    assert (found.text, found.format) == (expected, fmt)


def test_romanian_plates_begin_with_an_issued_county_code() -> None:
    assert match("CJ 12 ABC", "eu").format == "eu_ro"  # type: ignore[union-attr]
    assert match("B 123 ABC", "eu").format == "eu_ro_b"  # type: ignore[union-attr]
    # No county "IR" or "F": a misread, not a plate (real frames read "TR 05 RBG" as IR05R8G).
    assert match("IR 05 RBG", "eu") is None
    assert match("Q 99 STK", "eu") is None


def test_a_lost_leading_i_is_restored_only_where_it_makes_a_county() -> None:
    found = match("F99STK", "eu")  # "IF 99 STK": the thin I beside the band not read
    assert found is not None
    assert (found.text, found.format, found.repairs) == ("IF99STK", "eu_ro", 1)
    assert match("L03ABC", "eu").text == "IL03ABC"  # type: ignore[union-attr]
    assert match("K99STK", "eu") is None  # "IK" is no county


def test_the_cameras_country_wins_when_a_read_fits_two_countries() -> None:
    # Real Romanian frames: "DB 48 SCF" read 0848SCF, a valid Spanish plate as it stands.
    assert match("0848SCF", "eu").format == "eu_es"  # type: ignore[union-attr]
    home = match("0848SCF", "eu", country="ro")
    assert home is not None and (home.text, home.format) == ("DB48SCF", "eu_ro")
    # A foreign plate that fits no home format is still read.
    assert match("1234 BCD", "eu", country="ro").format == "eu_es"  # type: ignore[union-attr]
    assert match("7ABC123", "us", country="us").text == "7ABC123"  # type: ignore[union-attr]
    # The band's edge read as a leading L: dropped only for a plate of the camera's country.
    # As read it is a valid British plate (and a French one with 5 read as G).
    assert match("LB95GSV", "eu").format == "eu_gb"  # type: ignore[union-attr]
    home = match("LB95GSV", "eu", country="ro")
    assert home is not None and (home.text, home.repairs) == ("B95GSV", 1)
    assert match("LB95GSV", "eu", country="de").format == "eu_gb"  # type: ignore[union-attr]


def test_valid_characters_are_never_rewritten() -> None:
    # "B" and "8" both fit an alphanumeric slot of a Chinese plate: both are kept as read.
    assert match("京A·B8B8B").text == "京AB8B8B"  # type: ignore[union-attr]
    assert match("京A·88888").text == "京A88888"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw",
    ["", "EXIT", "京A·123", "京A·1234567", "NO PARKING", "WAREHOUSE", "ABCDEFGHIJ", "京A·12$45"],
)
def test_non_plates_are_rejected(raw: str) -> None:
    assert match(raw) is None


def test_region_restricts_the_formats() -> None:
    assert match("7ABC123", "cn") is None
    assert match("京A·12345", "us") is None
    # A vanity US plate passes only when the camera is declared as US.
    assert match("GO4IT22") is None
    assert match("GO4IT22", "us") is not None


def test_normalise_folds_full_width_and_drops_separators() -> None:
    assert normalise("京Ａ·１２３４５") == "京A12345"
    assert normalise(" ab-123 cd ") == "AB123CD"


def test_gs1_hri_of_rendered_labels_parses_with_check_digits() -> None:
    rng = random.Random(3)
    for _ in range(50):
        label = random_pallet_label(rng)
        parsed = gs1.parse(label.gs1_hri)
        assert parsed.values == {
            "00": label.sscc, "01": label.gtin, "10": label.batch,
            "17": f"{label.expiry:%y%m%d}",
        }
        assert parsed.named()["sscc"] == label.sscc


def test_gs1_raw_form_with_group_separators() -> None:
    raw = "]C1" + "00106141411234567897" + "10ABC123" + gs1.GS + "17251231" + "3103000500"
    parsed = gs1.parse(raw)
    assert parsed.values == {"00": "106141411234567897", "10": "ABC123", "17": "251231",
                             "3103": "000500"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("(00)106141411234567890", "check digit"),  # last digit wrong
        ("(01)1234", "14 characters"),
        ("(17)251340", "not a date"),
        ("(99)XYZ", "unknown application identifier"),
        ("00)123", "18 characters"),  # raw form: "00" is the AI, too short
    ],
)
def test_gs1_errors_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(gs1.GS1Error, match=reason):
        gs1.parse(text)


def test_a_plate_of_an_unlisted_country_is_read_only_on_a_detected_plate() -> None:
    # A Texas plate fits no listed format: a street sign's text must not become a plate...
    assert match("303-WVD") is None
    # ...but on what the plate detector boxed it is read as it stands.
    found = match("303-WVD", on_plate=True)
    assert found is not None
    assert (found.text, found.format, found.region) == ("303WVD", "world", "other")
    assert found.repairs == 0
    assert match("303-WVD", "eu", on_plate=True).region == "eu"  # type: ignore[union-attr]
    assert match("FORDGT", on_plate=True).format == "vanity"  # type: ignore[union-attr]
    assert match("FORDGT", "us", on_plate=True).format == "vanity"  # type: ignore[union-attr]
    assert match("AUCHAN", "eu", on_plate=True) is None  # a shop sign: EU plates hold digits
    # Never a word printed around plates, nor what no plate holds.
    for raw in ("TEXAS", "WASHINGTON", "DEALER", "WAREHOUSE", "AB", "ABCDEFGHIJ", "12"):
        assert match(raw, on_plate=True) is None, raw
    # Chinese plates are all listed: one that fits none is a misread.
    assert match("京A·123", "cn", on_plate=True) is None
    assert match("京A·123", on_plate=True) is None
    # A listed format still wins, with its repair, over the text as read.
    assert match("LRO5ZSZ", on_plate=True).text == "LR05ZSZ"  # type: ignore[union-attr]


def test_british_plates_and_the_german_seal() -> None:
    assert match("LR05 ZSZ").format == "eu_gb"  # type: ignore[union-attr]
    assert match("P445 JRV").format == "eu_gb_prefix"  # type: ignore[union-attr]
    assert match("Q45 JRV") is None  # no Q in a British prefix
    # The suffix series (to 1983), still on the road: read as it stands, not repaired into a
    # New York plate (real photographs: "ACU 254L" came out ACU2541, "SJB 418A" SJB4184).
    assert match("ACU 254L").format == "eu_gb_suffix"  # type: ignore[union-attr]
    assert match("ACU 254L").text == "ACU254L"  # type: ignore[union-attr]
    assert match("SJB 418A").text == "SJB418A"  # type: ignore[union-attr]
    assert match("ABC 123I", "eu") is None  # no I among the year letters
    assert match("ABC1234").format == "us_ny_tx"  # type: ignore[union-attr]
    # The registration seal between district and letters, read as a small "o".
    assert match("N o HZ 1002").text == "NHZ1002"  # type: ignore[union-attr]
    assert match("NoHZ1002").text == "NHZ1002"  # type: ignore[union-attr]
    assert match("NOHZ1002").text == "NOHZ1002"  # type: ignore[union-attr]  # a capital O is kept


def test_only_a_fixed_length_format_says_no_character_is_missing() -> None:
    assert fixed_length(match("AB-123-CD"))  # type: ignore[arg-type]
    assert not fixed_length(match("IF 999"))  # type: ignore[arg-type]  # German: any length
    assert not fixed_length(match("303-WVD", on_plate=True))  # type: ignore[arg-type]


def test_a_bracket_or_bar_between_characters_is_a_character_not_made_out() -> None:
    # A real green plate 苏E·D51712 read with its 7 as "(": without it, a 7-character plate
    # that fits the ordinary Chinese format; the read must be refused, not shortened.
    assert match("苏E·D51(12", "cn") is None
    assert match("B1|23ABC", "eu") is None
    assert match("AB/123/CD", on_plate=True) is None
    # At the ends it is the plate's frame or edge, and the plate is read.
    assert match("[B 123 ABC]", "eu").text == "B123ABC"  # type: ignore[union-attr]
    assert match("苏E·D51712|", "cn").text == "苏ED51712"  # type: ignore[union-attr]
    assert match("AB-123-CD", "eu").text == "AB123CD"  # type: ignore[union-attr]


def test_a_camera_in_the_us_trusts_us_plates_of_any_layout_under_auto() -> None:
    # A real Washington plate "A69985T": under auto it is repaired into a French plate (6 as G,
    # 5 as S); a camera set to stand in the US reads it as it is, as region "us" would.
    assert match("A69985T", on_plate=True).text == "AG998ST"  # type: ignore[union-attr]
    for found in (match("A69985T", country="us", on_plate=True), match("A69985T", "us")):
        assert found is not None and (found.text, found.region) == ("A69985T", "us")
    assert match("A69985T", country="ro", on_plate=True).text == "AG998ST"  # type: ignore[union-attr]


def test_a_read_is_foreign_when_the_camera_has_a_country_and_the_format_is_not_its_own() -> None:
    romanian = match("B58DTK", "eu")
    spanish = match("0848SCF", "eu")
    world = match("27BN42", "auto", on_plate=True)
    assert romanian is not None and spanish is not None and world is not None
    assert not foreign(romanian, "ro") and foreign(spanish, "ro")
    assert foreign(world, "ro")  # an unlisted plate belongs to no country
    assert not any(foreign(p, None) for p in (romanian, spanish, world))  # no country set
