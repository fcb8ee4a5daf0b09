"""Text Xero would refuse, or store as something nobody can read: longer than its field takes,
showing nothing (whitespace, zero-width and other invisible characters alone), or carrying
control characters. Checked before mapping, so such a transaction never reaches the poster.

Nothing is trimmed or replaced: text is sent as received or refused, and the caller fixes it at
the source."""

from __future__ import annotations

from dataclasses import dataclass
from unicodedata import category

from xerolink_mapper.domain.problems import Problems

# Letters and symbols to Unicode that draw nothing: the Hangul fillers and the blank Braille
# pattern. Text made of them alone looks empty in Xero.
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# The only control characters a multi-line field keeps: tab and line breaks (CR for CRLF text).
_LINE_CONTROLS = frozenset("\t\n\r")


@dataclass(frozen=True, slots=True)
class TextRule:
    """What a Xero field takes. `what` names it in violations ("a Xero contact name"); `limit`
    is its length in UTF-16 units (0: none); `required` fields say Xero needs visible text;
    `multiline` fields may hold tabs and line breaks; `ascii_only` fields take no other letters."""

    what: str
    limit: int = 0
    required: bool = False
    multiline: bool = False
    ascii_only: bool = False


def utf16_length(value: str) -> int:
    """Length as a UTF-16 service counts it: a character beyond the Basic Multilingual Plane is
    two. The stricter of the ways a JSON service may count, so what fits here fits Xero."""
    return len(value) if value.isascii() else len(value.encode("utf-16-le")) // 2


def _shows_nothing(char: str, kind: str) -> bool:
    # Separators (Z*), marks (M*, nothing to combine with when alone), format characters (Cf:
    # U+200B..U+200D, U+2060, U+FEFF, U+00AD...), tab and line breaks, fillers.
    return kind[0] in "ZM" or kind == "Cf" or char in _LINE_CONTROLS or char in _FILLERS


def _scan(value: str, multiline: bool) -> tuple[int, bool]:
    """(index of the first character Xero cannot store, or -1; whether the text shows nothing)."""
    blank = True
    for index, char in enumerate(value):
        kind = category(char)
        if kind == "Cs" or (kind == "Cc" and not (multiline and char in _LINE_CONTROLS)):
            return index, False
        if blank and not _shows_nothing(char, kind):
            blank = False
    return -1, blank


def _code_points(value: str) -> str:
    seen = list(dict.fromkeys(value))
    shown = ", ".join(f"U+{ord(c):04X}" for c in seen[:3])
    return shown + (", ..." if len(seen) > 3 else "")


def check_text(value: str, path: str, rule: TextRule, problems: Problems) -> bool:
    """Records the first problem of `value` for the field `rule` describes (one per field, the
    one to fix first); True when there is none. Empty text passes: whether a field may be absent
    is the caller's rule."""
    if not value:
        return True
    if rule.limit and len(value) > rule.limit // 2:
        units = utf16_length(value)
        if units > rule.limit:
            counted = (
                f"{units} UTF-16 units ({len(value)} characters)" if units != len(value) else f"{units} characters"
            )
            problems.field(path, f"is {counted}; {rule.what} takes at most {rule.limit}")
            return False
    # Plain ASCII text, almost all of it, needs no look-up per character.
    if value.isascii() and value.isprintable():
        bad, blank = -1, not value.strip(" ")
    else:
        bad, blank = _scan(value, rule.multiline)
    if bad >= 0:
        char = value[bad]
        if category(char) == "Cs":
            problems.field(
                path, f"holds U+{ord(char):04X}, an unpaired surrogate, at character {bad + 1}: it is not text"
            )
        else:
            allowed = "; only tab and line breaks are allowed here" if rule.multiline else ""
            problems.field(
                path,
                f"holds the control character U+{ord(char):04X} at character {bad + 1}: Xero cannot store it in "
                f"{rule.what}; remove it{allowed}",
            )
        return False
    if blank:
        fix = f"Xero needs visible text for {rule.what}" if rule.required else "send visible text or leave it empty"
        problems.field(
            path, f"shows nothing: it holds only whitespace or invisible characters ({_code_points(value)}); {fix}"
        )
        return False
    if rule.ascii_only and not value.isascii():
        index, char = next((i, c) for i, c in enumerate(value) if not c.isascii())
        problems.field(
            path,
            f"holds {char!r} (U+{ord(char):04X}) at character {index + 1}: {rule.what} takes ASCII characters only",
        )
        return False
    return True
