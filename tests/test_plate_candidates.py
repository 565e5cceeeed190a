"""The second plate-proposal stage's decisions: which text lines may be a plate, stacked rows,
the words around a plate dropped, the format kept, and how often the stage may run."""

from __future__ import annotations

from decisions.plate_candidates import (
    ProposalBudget,
    candidates,
    crop_number_lines,
    plate_from_texts,
    plate_shaped,
    stacked_pairs,
)
from decisions.plate_format import match


def test_plate_shaped_lines_pass_and_signs_banners_and_specks_do_not() -> None:
    assert plate_shaped((500, 400, 120, 30), frame_size=(1280, 720))  # an EU number line
    assert plate_shaped((500, 400, 20, 28), frame_size=(1280, 720))  # one stacked character
    assert not plate_shaped((10, 0, 900, 60), frame_size=(1280, 720))  # a banner: 15:1
    assert not plate_shaped((10, 0, 40, 6), frame_size=(1280, 720))  # too small to read
    assert not plate_shaped((10, 0, 600, 200), frame_size=(1280, 720))  # taller than any plate
    # Cut by the frame's side: "IF 99 S|" would read as another valid plate, IF99.
    assert not plate_shaped((1132, 466, 122, 58), frame_size=(1280, 720))  # 26 px from it
    assert not plate_shaped((0, 466, 130, 40), frame_size=(1280, 720))


def test_two_aligned_rows_of_like_height_are_one_stacked_plate() -> None:
    upper, lower = (100, 100, 60, 20), (95, 124, 70, 22)
    far_below = (100, 200, 60, 20)
    beside = (300, 124, 60, 20)
    assert stacked_pairs([upper, lower, far_below, beside]) == [(0, 1)]
    found = candidates([upper, lower], frame_size=(1280, 720), limit=5)
    # The pair (read top row first) and each row alone that is wide enough for a plate.
    assert found[0].lines == (0, 1) and found[0].box == (95, 100, 70, 46)
    assert {c.lines for c in found} == {(0, 1), (0,), (1,)}
    assert len(candidates([upper, lower], frame_size=(1280, 720), limit=1)) == 1


def test_eu_plates_with_hyphens_spaces_and_the_band_code_read_as_their_number() -> None:
    assert plate_from_texts(["B-191-KRY"], "eu").text == "B191KRY"  # type: ignore[union-attr]
    assert plate_from_texts(["TR 05 RBG"], "eu").text == "TR05RBG"  # type: ignore[union-attr]
    assert plate_from_texts(["RO B 96 SXV"], "eu").text == "B96SXV"  # type: ignore[union-attr]
    assert plate_from_texts(["AB-123-CD"], "eu").text == "AB123CD"  # type: ignore[union-attr]


def test_us_state_names_slogans_and_dealer_frames_are_dropped() -> None:
    read = plate_from_texts(["California", "7ABC123", "DEALER"], "us")
    assert read is not None and read.text == "7ABC123" and read.format == "us_ca"
    read = plate_from_texts(["NEW YORK", "ABC-1234", "EMPIRE STATE"], "auto")
    assert read is not None and read.text == "ABC1234"
    read = plate_from_texts(["TEXAS", "KXB 4821", "The Lone Star State"], "us")
    assert read is not None and read.text == "KXB4821"
    # Canadian and Gulf plates carry their place name too; alone it is no (vanity) plate.
    read = plate_from_texts(["ONTARIO", "BKHT 146", "YOURS TO DISCOVER"], "auto", on_plate=True)
    assert read is not None and read.text == "BKHT146"
    assert plate_from_texts(["DUBAI"], "auto", on_plate=True) is None
    assert plate_from_texts(["Beautiful British Columbia", "990 XWK"], "auto",
                            on_plate=True).text == "990XWK"  # type: ignore[union-attr]


def test_stacked_rows_read_top_first_make_one_plate() -> None:
    read = plate_from_texts(["CJ 12", "ABC"], "eu")
    assert read is not None and read.text == "CJ12ABC" and read.format == "eu_ro"


def test_words_that_are_not_plates_stay_out() -> None:
    # "Passat" fits a plate only with two look-alike repairs: a proposal allows one.
    assert plate_from_texts(["Passat"], "auto") is None
    assert plate_from_texts(["OPEN 24 HOURS"], "auto") is None
    assert plate_from_texts(["WASHINGTON"], "us") is None
    assert plate_from_texts([""], "auto") is None


def test_romanian_plates_match_and_do_not_steal_french_ones() -> None:
    for text in ("B123ABC", "B12ABC", "CJ12ABC"):
        found = match(text, "eu")
        assert found is not None and found.text == text and found.repairs == 0
    french = match("AB-123-CD", "eu")
    assert french is not None and french.format == "eu_fr_it"


def test_the_budget_allows_one_run_per_period_of_picture_time() -> None:
    budget = ProposalBudget(every_us=200_000)
    frames = [i * 40_000 for i in range(25)]  # one second at 25 frames a second
    runs = [at for at in frames if budget.take(at)]
    assert runs == [0, 200_000, 400_000, 600_000, 800_000]


def test_a_detected_plate_running_into_the_frame_side_is_not_read() -> None:
    from decisions.plate_candidates import plate_cut_by_frame_side

    # Real frame: "IF 99 S|" at the right side of a 1280 px frame was read as IF999.
    assert plate_cut_by_frame_side((1056, 465, 213, 62), 1280)
    assert plate_cut_by_frame_side((3, 400, 150, 40), 1280)
    assert not plate_cut_by_frame_side((660, 654, 294, 66), 1280)
    assert not plate_cut_by_frame_side((0, 0, 300, 100), 310)  # a tight crop is one plate
    # A plate cropped with a margin of a few pixels each side (a real Texas plate, 189 px wide
    # with its frame): not cut, though its box is nearer the sides than a quarter of its height.
    assert not plate_cut_by_frame_side((20, 30, 143, 89), 189)
    assert not plate_cut_by_frame_side((9, 16, 54, 57), 73)
    assert plate_cut_by_frame_side((2, 16, 54, 57), 120)  # a margin on one side only
    # A real Washington plate 8 px from the side of a photograph squashed to 416x416 (its box
    # 91x81): a quarter of its height is a character and a half; it is whole.
    assert not plate_cut_by_frame_side((8, 192, 91, 81), 416)
    assert plate_cut_by_frame_side((5, 192, 91, 81), 416)


def test_a_crops_number_is_its_tallest_row_state_and_slogan_left_out() -> None:
    # A US plate crop 400x260: state name, the number split in two by the text detector, a
    # slogan below.
    state, left, right, slogan = (150, 40, 100, 22), (60, 100, 130, 70), (200, 102, 140, 68), \
        (110, 200, 180, 18)
    groups = crop_number_lines([state, left, right, slogan], (400, 260))
    assert groups[0] == ((60, 100, 280, 70),)  # the two halves joined into one row
    assert all(state not in g and slogan not in g for g in groups)


def test_a_crops_two_stacked_rows_come_first_and_a_scene_has_no_number() -> None:
    top, bottom = (40, 20, 120, 60), (40, 90, 120, 60)
    assert crop_number_lines([top, bottom], (200, 170))[0] == (top, bottom)
    # Text a tenth of the picture's height: a scene's sign, not a crop's number.
    assert crop_number_lines([(100, 300, 200, 70)], (1280, 720)) == []
    assert crop_number_lines([], (200, 100)) == []


def test_lines_known_to_be_on_a_plate_read_as_an_unlisted_countrys_plate() -> None:
    assert plate_from_texts(["TEXAS", "303-WVD"], "auto") is None
    found = plate_from_texts(["TEXAS", "303-WVD"], "auto", on_plate=True)
    assert found is not None and (found.text, found.format) == ("303WVD", "world")
    # A listed format found in any reading of the lines wins over the text as read.
    found = plate_from_texts(["RO B 96 SXV"], "eu", on_plate=True)
    assert found is not None and (found.text, found.format) == ("B96SXV", "eu_ro_b2")
