"""Tag populations for simulated lots: real SGTIN-96 EPCs, so decoders see what readers send."""

from __future__ import annotations

SGTIN96_HEADER = 0x30
_PARTITION_BITS = {  # partition -> (company prefix bits, item reference bits)
    0: (40, 4), 1: (37, 7), 2: (34, 10), 3: (30, 14), 4: (27, 17), 5: (24, 20), 6: (20, 24),
}
_PARTITION_OF_DIGITS = {12: 0, 11: 1, 10: 2, 9: 3, 8: 4, 7: 5, 6: 6}


def sgtin96(company_prefix: str, item_reference: str, serial: int, filter_value: int = 1) -> str:
    """Encode an SGTIN-96 EPC as 24 upper-case hex digits (GS1 EPC Tag Data Standard 14.5.1)."""
    partition = _PARTITION_OF_DIGITS[len(company_prefix)]
    company_bits, item_bits = _PARTITION_BITS[partition]
    if not 0 <= serial < 2**38:
        raise ValueError("SGTIN-96 serial must fit in 38 bits")
    value = SGTIN96_HEADER
    value = (value << 3) | filter_value
    value = (value << 3) | partition
    value = (value << company_bits) | int(company_prefix)
    value = (value << item_bits) | int(item_reference)
    value = (value << 38) | serial
    return f"{value:024X}"


def lot_tags(lot_index: int, count: int, company_prefix: str = "0614141") -> list[str]:
    """EPCs of one simulated lot: one item reference per lot, serials 1..count."""
    item = f"{812345 + lot_index:06d}"
    return [sgtin96(company_prefix, item, serial) for serial in range(1, count + 1)]


def demo_lots(tags_per_lot: int = 40) -> dict[str, list[str]]:
    return {"LOT-A": lot_tags(0, tags_per_lot), "LOT-B": lot_tags(1, tags_per_lot)}
