"""Is an OCR string a licence plate, and which one? Per-region formats, with confusion repair.

Theory of operation: a format is a sequence of character slots (province, letter, digit, ...).
OCR text is normalised (upper case, separators and spaces removed), then matched slot by slot.
A character that does not fit its slot is repaired only if a known look-alike does (``0``/``O``,
``1``/``I``, ``8``/``B``, ...): the format demands the change. Characters that fit are never
touched, so a valid plate is never rewritten into another valid plate. Among formats that match,
the one needing the fewest repairs wins; a tie keeps the order of ``FORMATS``.

Variable-length formats (German plates, US vanity plates) are matched by pattern without repair,
because the slot of each character is not known.

Plates of the many countries with no format here are read only where something else says the
text is on a plate (``on_plate``: the plate detector boxed it): then, if no listed format fits, a
"world" number (4 to 8 letters and digits, at least one digit) or, outside Europe, a vanity
plate (5 to 7 letters, not a word printed around plates) is taken as read, without repair. A text
detector's line in a street scene gets no such trust: shop signs would become plates.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Region = Literal["cn", "eu", "us", "other"]
RegionChoice = Literal["cn", "eu", "us", "auto"]

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # China never issues I or O
_DIGITS = "0123456789"
_LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

SLOTS: dict[str, str] = {
    "P": PROVINCES,
    "L": _CN_LETTERS,
    "A": _CN_LETTERS + _DIGITS,
    "E": "DF",  # new-energy: D electric, F hybrid
    "D": _DIGITS,
    "X": _LATIN,
    "S": "BCDFGHJKLMNPRSTVWXYZ",  # Spanish series: consonants
    "G": "ABCDEFGHJKLMNOPRSTUVWXY",  # Great Britain's area code: no I, Q or Z
    "H": "ABCDEFGHJKLMNOPRSTUVWXYZ",  # Great Britain's series: no I or Q
    "Y": "ABCDEFGHJKLMNPRSTVWXY",  # Great Britain's year letters before 2001
}

# Look-alikes OCR confuses, from what was read to what the slot may hold.
_LOOKALIKES: dict[str, str] = {
    "0": "ODQ", "O": "0D", "Q": "0O", "D": "0O",
    "1": "IT", "I": "1", "L": "1", "T": "1",
    "8": "B", "B": "8",
    "5": "S", "S": "5",
    "2": "Z", "Z": "2",
    "6": "G", "G": "6",
    "4": "A", "A": "4",
    "7": "T",
}


@dataclass(frozen=True, slots=True)
class PlateFormat:
    name: str
    region: Region
    slots: str | None  # slot letters, or None for a pattern-only format
    pattern: re.Pattern[str] | None = None
    prefixes: frozenset[str] | None = None  # the issued codes the plate must begin with
    countries: frozenset[str] = frozenset()  # ISO 3166 alpha-2, lower case


# Romania's county codes ("B" is Bucharest, the only one-letter code).
_RO_COUNTIES = frozenset({
    "AB", "AG", "AR", "BC", "BH", "BN", "BR", "BT", "BV", "BZ", "CJ", "CL", "CS", "CT", "CV",
    "DB", "DJ", "GJ", "GL", "GR", "HD", "HR", "IF", "IL", "IS", "MH", "MM", "MS", "NT", "OT",
    "PH", "SB", "SJ", "SM", "SV", "TL", "TM", "TR", "VL", "VN", "VS",
})


_CN, _RO, _US = frozenset({"cn"}), frozenset({"ro"}), frozenset({"us"})
_GB = frozenset({"gb"})

FORMATS: tuple[PlateFormat, ...] = (
    PlateFormat("cn_standard", "cn", "PLAAAAA", countries=_CN),
    PlateFormat("cn_new_energy_small", "cn", "PLEADDDD", countries=_CN),
    PlateFormat("cn_new_energy_large", "cn", "PLDDDDDE", countries=_CN),
    PlateFormat("eu_fr_it", "eu", "XXDDDXX", countries=frozenset({"fr", "it"})),
    PlateFormat("eu_es", "eu", "DDDDSSS", countries=frozenset({"es"})),
    # Romania: county code (Bucharest "B", else two letters), two digits (three in Bucharest),
    # three letters: "B 123 ABC", "B 12 ABC", "CJ 12 ABC".
    PlateFormat("eu_ro", "eu", "XXDDXXX", prefixes=_RO_COUNTIES, countries=_RO),
    PlateFormat("eu_ro_b", "eu", "XDDDXXX", prefixes=frozenset({"B"}), countries=_RO),
    PlateFormat("eu_ro_b2", "eu", "XDDXXX", prefixes=frozenset({"B"}), countries=_RO),
    # Great Britain: "LR05 ZSZ" since 2001, "P445 JRV" before (prefix series), "ACU 254L"
    # before 1983 (suffix series: still on classic cars, and kept for life).
    PlateFormat("eu_gb", "eu", "GGDDHHH", countries=_GB),
    PlateFormat("eu_gb_prefix", "eu", "YDDDHHH", countries=_GB),
    PlateFormat("eu_gb_suffix", "eu", "GGGDDDY", countries=_GB),
    PlateFormat("eu_de", "eu", None, re.compile(r"^[A-Z]{1,3}[A-Z]{1,2}[1-9][0-9]{0,3}[EH]?$"),
                countries=frozenset({"de"})),
    PlateFormat("us_ca", "us", "DXXXDDD", countries=_US),
    PlateFormat("us_ny_tx", "us", "XXXDDDD", countries=_US),
    PlateFormat("us_other", "us", None, re.compile(r"^(?=.*[0-9])[A-Z0-9]{5,8}$"),
                countries=_US),
)
_FORMAT: dict[str, PlateFormat] = {f.name: f for f in FORMATS}

# Words printed around plates that are not the number: US state names and their slogans,
# dealer frames. The proposal stage drops them from a scene's text; a vanity plate is never one.
_STATES_TEXT = (
    "ALABAMA ALASKA ARIZONA ARKANSAS CALIFORNIA COLORADO CONNECTICUT DELAWARE FLORIDA GEORGIA "
    "HAWAII IDAHO ILLINOIS INDIANA IOWA KANSAS KENTUCKY LOUISIANA MAINE MARYLAND MASSACHUSETTS "
    "MICHIGAN MINNESOTA MISSISSIPPI MISSOURI MONTANA NEBRASKA NEVADA OHIO OKLAHOMA OREGON "
    "PENNSYLVANIA TENNESSEE TEXAS UTAH VERMONT VIRGINIA WASHINGTON WISCONSIN WYOMING"
)
US_STATE_NAMES: tuple[str, ...] = tuple(_STATES_TEXT.split())
SURROUNDING_PHRASES: tuple[str, ...] = (
    "NEW HAMPSHIRE", "NEW JERSEY", "NEW MEXICO", "NEW YORK", "NORTH CAROLINA", "NORTH DAKOTA",
    "RHODE ISLAND", "SOUTH CAROLINA", "SOUTH DAKOTA", "WEST VIRGINIA", "EMPIRE STATE",
    "SUNSHINE STATE", "GARDEN STATE", "LONE STAR STATE", "LAND OF LINCOLN", "LIVE FREE OR DIE",
    "GREAT LAKES", "FIRST IN FLIGHT", "THE OCEAN STATE", "FAMOUS POTATOES", "GRAND CANYON STATE",
    "DEALER", "DEALERSHIP", "MOTORS", "AUTO", "CARS", "SALES", "DOT GOV", "EXCELSIOR",
    "PURE MICHIGAN", "GREEN MOUNTAIN STATE", "KEYSTONE STATE", "WILD WONDERFUL",
    # Canadian, Mexican and Gulf plates, met on North American and European roads alike: the
    # place name on the plate ("DUBAI" above a Dubai number was read as a vanity plate).
    "CANADA", "ONTARIO", "QUEBEC", "ALBERTA", "MANITOBA", "SASKATCHEWAN", "YUKON", "NUNAVUT",
    "BRITISH COLUMBIA", "NOVA SCOTIA", "NEW BRUNSWICK", "NEWFOUNDLAND", "LABRADOR",
    "YOURS TO DISCOVER", "JE ME SOUVIENS", "MEXICO", "DUBAI", "SHARJAH", "AJMAN", "QATAR",
    "KUWAIT",
)
_NOT_VANITY = frozenset(US_STATE_NAMES) | frozenset(p.replace(" ", "") for p in SURROUNDING_PHRASES)
# On a detected plate, when no listed format fits (see the module).
UNLISTED_FORMATS = frozenset({"world", "vanity"})
_WORLD_NUMBER = re.compile(r"^(?=.*[0-9])[A-Z0-9]{4,8}$")
_VANITY = re.compile(r"^[A-Z]{5,7}$")
# The German and Austrian registration seal between the district and the letters, which the
# recogniser reads as a small "o" ("N o HZ 1002"); plates have no lower-case letters.
_SEAL = re.compile(r"(?<=[A-ZÄÖÜ])\s*[o°]\s*(?=[A-Z])")
# A bracket, bar or slash between a read's characters stands for a character the recogniser could
# not make out ("苏E·D51(12" for 苏E·D51712): dropping it, as separators are dropped, would
# leave a shorter plate that may fit another format. Before the first or after the last
# character it is the plate's edge or frame, and harmless.
_STAND_IN = re.compile(r"(?<=[^\W_])\s*[()\[\]{}|/\\<>!?]+\s*(?=[^\W_])")
# The countries whose plates the formats know: a camera may name the one it stands in.
COUNTRIES: frozenset[str] = frozenset().union(*(f.countries for f in FORMATS))


@dataclass(frozen=True, slots=True)
class PlateText:
    text: str
    region: Region
    format: str
    repairs: int

    @property
    def listed(self) -> bool:
        """Read in a listed country's format, not taken as it stands (see the module)."""
        return self.format not in UNLISTED_FORMATS


def fixed_length(plate: PlateText) -> bool:
    """Does the read fill a format of a fixed number of characters? Then no character can be
    missing from it; a pattern's or an unlisted plate's read may be a plate cut short."""
    fmt = _FORMAT.get(plate.format)
    return fmt is not None and fmt.slots is not None


def foreign(plate: PlateText, country: str | None) -> bool:
    """Is the read in another country's format than the camera's (``country``)? An unlisted
    plate's format belongs to no country: foreign wherever a country is set."""
    fmt = _FORMAT.get(plate.format)
    return country is not None and (fmt is None or country not in fmt.countries)


def normalise(raw: str) -> str:
    """Upper case, full-width folded to ASCII, separators and spaces dropped."""
    folded = unicodedata.normalize("NFKC", raw).upper()
    return "".join(ch for ch in folded if ch.isalnum())


def _fits(text: str, slots: str, max_repairs: int) -> Iterator[tuple[str, int]]:
    """Every way ``text`` fits ``slots`` with at most ``max_repairs`` repairs, each repaired
    character's look-alikes in turn (the first first): "0" in a letter slot may be O or D."""
    if len(text) != len(slots):
        return
    choices: list[str] = []
    repairs = 0
    for ch, slot in zip(text, slots, strict=True):
        allowed = SLOTS[slot]
        if ch in allowed:
            choices.append(ch)
            continue
        alternatives = "".join(alt for alt in _LOOKALIKES.get(ch, "") if alt in allowed)
        if not alternatives:
            return
        choices.append(alternatives)
        repairs += 1
    if repairs > max_repairs:
        return
    for chars in itertools.product(*choices):
        yield "".join(chars), repairs


def match(raw: str, region: RegionChoice = "auto", *, max_repairs: int = 2,
          country: str | None = None, on_plate: bool = False) -> PlateText | None:
    """The plate ``raw`` reads as, or None if it fits no format of ``region``.

    ``on_plate``: the text was read on what the plate detector found to be a plate; then a
    plate of an unlisted country is read as it stands (a "world" or "vanity" plate, see the
    module) where no listed format fits. Chinese plates are all listed: not for ``cn``.

    ``country``: where the camera stands. Its own formats win over other countries' when both
    fit, even at more repairs: in Romania "0848SCF" is DB 48 SCF read with D as 0 and B as 8,
    though it is also a valid Spanish plate as it stands. Foreign plates are still read where
    no home format fits them."""
    if _STAND_IN.search(raw):
        return None
    text = normalise(_SEAL.sub("", raw))
    if not text:
        return None
    found = _best(text, region, max_repairs, country)
    if found is None and max_repairs >= 1 and region in ("eu", "auto"):
        # A thin leading "I" beside the EU band is the character OCR drops most ("IF 99 STK"
        # read "F99STK": 8 of 127 real Romanian plates). Restored only where that makes an
        # issued county code, as one repair.
        restored = _best("I" + text, region, max_repairs - 1, country)
        if restored is not None and restored.format == "eu_ro":
            found = PlateText(restored.text, restored.region, restored.format,
                              restored.repairs + 1)
    if (country is not None and max_repairs >= 1 and len(text) > 5 and text[0] in "LI1"
            and (found is None or country not in _FORMAT[found.format].countries)):
        # The EU band's inner edge read as a leading L or I ("LB 95 GSV" for B 95 GSV, which
        # then fits a French plate): dropped where that makes a plate of the camera's country.
        trimmed = _best(text[1:], region, max_repairs - 1, country)
        if trimmed is not None and country in _FORMAT[trimmed.format].countries:
            found = PlateText(trimmed.text, trimmed.region, trimmed.format, trimmed.repairs + 1)
    if found is None and on_plate and region != "cn":
        found = _unlisted(text, region)
    return found


def _unlisted(text: str, region: RegionChoice) -> PlateText | None:
    """A plate of a country with no format here, as read (no slots, so no repair). Latin
    letters and digits only: a Chinese plate that fits no Chinese format is a misread."""
    in_region: Region = "other" if region == "auto" else region
    if _WORLD_NUMBER.match(text):
        return PlateText(text, in_region, "world", 0)
    # Vanity plates are American: EU numbers all hold digits, and an all-letter box in a European
    # street is a shop sign ("AUCHAN" on Romanian night frames).
    if region in ("us", "auto") and _VANITY.match(text) and text not in _NOT_VANITY:
        return PlateText(text, in_region, "vanity", 0)
    return None


def _best(text: str, region: RegionChoice, max_repairs: int,
          country: str | None = None) -> PlateText | None:
    best: PlateText | None = None
    for fmt in FORMATS:
        if region not in ("auto", fmt.region):
            continue
        if fmt.slots is not None:
            prefixes = fmt.prefixes
            fitted = next((fit for fit in _fits(text, fmt.slots, max_repairs) if prefixes is None
                           or any(fit[0].startswith(code) for code in prefixes)), None)
            if fitted is None:
                continue
            found = PlateText(fitted[0], fmt.region, fmt.name, fitted[1])
        else:
            # Pattern-only formats are loose; in auto mode only an explicit region, or a camera
            # standing in the format's country, trusts them.
            if fmt.pattern is None or not fmt.pattern.match(text):
                continue
            if fmt.name == "us_other" and region != "us" and country not in fmt.countries:
                continue
            found = PlateText(text, fmt.region, fmt.name, 0)
        # Fewer repairs wins; at equal repairs a slot format beats a loose pattern.
        if best is None or _rank(found, country) < _rank(best, country):
            best = found
    return best


def _rank(found: PlateText, country: str | None = None) -> tuple[int, int, int]:
    return (int(foreign(found, country)), found.repairs, int(_FORMAT[found.format].slots is None))
