"""Pack serial numbers as the operator station accepts them (issue 18 item 5).

A serial is what the record, the database and every report key a pack by. So the station takes
only what a label can carry: no control, format or bidi characters (U+202E makes one serial
display as another), a sane length, and the station's pattern (``pack.serial_pattern`` in the
station file; VS02 PRO: ``VS02P-YY-NNNNNN``). After the run has read the BMS's identity over
UDS, the scanned serial must be the one the BMS reports: else the wrong pack is on the bench.
"""

from __future__ import annotations

import re
import unicodedata

#: longer than any label a scanner reads; a 200,000-character "serial" is an attack, not a pack
MAX_SERIAL_CHARS = 64
#: Unicode categories never in a serial: control, format (bidi overrides, zero-width), surrogates,
#: private use, unassigned, line/paragraph separators
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: the check the station adds to the record when it compares the scan with the BMS
SERIAL_CHECK_ID = "pack_serial_matches_bms"


def hygiene_problem(serial: str) -> str | None:
    """What makes ``serial`` unusable as any serial at all, or None."""
    if len(serial) > MAX_SERIAL_CHARS:
        return f"serial too long ({len(serial)} characters, at most {MAX_SERIAL_CHARS})"
    for ch in serial:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            name = unicodedata.name(ch, "control character")
            return f"serial contains an invisible or control character U+{ord(ch):04X} ({name})"
    return None


def serial_problem(serial: str, pattern: str) -> str | None:
    """Why the station refuses the scanned ``serial``, or None."""
    problem = hygiene_problem(serial)
    if problem:
        return problem
    if not re.fullmatch(pattern, serial):
        return f"serial {serial!r} is not a pack serial of this station (expected pattern {pattern})"
    return None


def bms_mismatch(scanned: str, bms_serial: str) -> str | None:
    """Why the pack on the bench is not the scanned one, or None when they agree."""
    if not bms_serial:
        return f"the BMS did not report its serial: cannot confirm pack {scanned} is on the bench"
    if bms_serial.strip() != scanned:
        return f"wrong pack on the bench: scanned {scanned}, the BMS reports {bms_serial.strip()}"
    return None
