"""PII redaction for Vietnamese text: typed placeholders and per-type counts.

Hand-written: datatrove's ``PIIFormatter`` knows only e-mail and IP addresses, and no library
knows Vietnamese phone numbering (10-digit mobiles, 11-digit ``02x`` landlines, ``+84``), the
9-digit CMND / 12-digit CCCD citizen IDs, or how prices (``1.500.000 đồng``) and legal
references (``91/2015/QH13``, ``Điều 123``) are written in Vietnamese. Each detector is a
C-level regex scan; Python only validates the few candidates it finds (digit counts and
prefixes for phones, issuer prefix and Luhn checksum for cards, an ID keyword in the preceding
words for citizen IDs), so ordinary numbers are left alone.

Placeholders: ``<EMAIL>``, ``<PHONE>``, ``<ID_NUMBER>``, ``<IP>``, ``<CARD>``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

PII_TYPES = ("email", "phone", "id_number", "ip", "card")
PLACEHOLDERS = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "id_number": "<ID_NUMBER>",
    "ip": "<IP>",
    "card": "<CARD>",
}

_END = r"(?![\w@]|[.,]\d)"  # not followed by a letter/digit or by a decimal part

_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4_RE = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}{_END}")
_IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])")

# Phone candidates: an optional +84 / (+84) / 84 prefix or a (0xx) area code, then digit
# groups with single separators. Validation decides (and trims trailing groups that belong to
# a following number).
_PHONE_RE = re.compile(
    r"(?<![\w+.,/])(?:\(\+?84\)[ .-]?|\+84[ .-]?|84[ .-]?|\(0\d{2,3}\)[ .-]?|0)"
    r"\d{1,4}(?:[ .-]?\d{1,4}){1,5}" + _END
)
# Citizen ID candidates: 9 or 12 digits, optionally in groups of three.
_ID_RE = re.compile(r"(?<![\w.,/+-])\d{3}[ .]?\d{3}[ .]?\d{3}(?:[ .]?\d{3})?" + _END)
# Card candidates: 13-19 digits, contiguous or in groups (4-4-4-4, 4-6-5 for Amex).
_CARD_RE = re.compile(
    r"(?<![\w.,/+-])(?:\d{13,19}|\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{5})" + _END
)

# Digits with separators, 7+ characters: where to look for IPs, phones, IDs and cards. The
# region handed to the precise patterns extends a few characters either side so that their
# look-behind and look-ahead assertions see the real neighbours.
_NUMBER_RUN_RE = re.compile(r"\d[\d .()+-]{5,}\d")

# Words that announce a citizen ID within the few words before the number.
_ID_CONTEXT_RE = re.compile(
    r"cmnd|cccd|cmt\b|căn cước|can cuoc|chứng minh|chung minh|định danh|dinh danh|"
    r"giấy tờ tùy thân|giấy tờ tuỳ thân|id card|national id|citizen id|identity card",
    re.IGNORECASE,
)
_ID_CONTEXT_WINDOW = 60

_MOBILE_PREFIXES = ("03", "05", "07", "08", "09")
_OLD_MOBILE_PREFIXES = ("012", "016", "018", "019")
_DIGIT_GROUP_RE = re.compile(r"\d+")


def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a card number given as digits only."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_issuer_ok(digits: str) -> bool:
    """Known issuer prefixes: Visa, Mastercard, Amex, JCB, Discover, UnionPay, Napas (9704)."""
    n = len(digits)
    if digits[0] == "4":
        return n in (13, 16, 19)
    two, four = int(digits[:2]), int(digits[:4])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if 3528 <= four <= 3589 or two == 62 or four == 6011 or two == 65:
        return 16 <= n <= 19
    return digits.startswith("9704") and n in (16, 19)


def _national_phone(digits: str, international: bool) -> str:
    """Phone digits in national form: ``84912345678`` -> ``0912345678``."""
    if international or (digits.startswith("84") and len(digits) in (11, 12)):
        return "0" + digits[2:]
    return digits


def _valid_phone(digits: str) -> bool:
    n = len(digits)
    if n == 10 and digits.startswith(_MOBILE_PREFIXES):
        return True
    if n == 11 and digits.startswith("02"):
        return True  # landline: 02x(x) area code + subscriber number, 11 digits in all
    return n == 11 and digits.startswith(_OLD_MOBILE_PREFIXES)  # pre-2018 mobile numbers


def _phone_span(match: re.Match) -> tuple[int, int] | None:
    """The longest prefix of a candidate (whole digit groups) that is a valid phone number."""
    text = match.group()
    international = text.lstrip("(").startswith("+") or text.startswith("(84")
    groups = list(_DIGIT_GROUP_RE.finditer(text))
    for k in range(len(groups), 0, -1):
        digits = "".join(g.group() for g in groups[:k])
        if len(digits) < 10:
            break
        if _valid_phone(_national_phone(digits, international)):
            return match.start(), match.start() + groups[k - 1].end()
    return None


def _number_regions(text: str) -> list[tuple[int, int]]:
    """Regions around digit runs of 7+ characters: the only places numeric PII can be."""
    regions: list[tuple[int, int]] = []
    for m in _NUMBER_RUN_RE.finditer(text):
        start, end = max(0, m.start() - 5), min(len(text), m.end() + 3)
        if regions and start <= regions[-1][1]:
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((start, end))
    return regions


def find_pii(text: str, types: Iterable[str] = PII_TYPES) -> list[tuple[int, int, str]]:
    """Spans ``(start, end, type)`` of the PII in ``text``, sorted and non-overlapping."""
    wanted = set(types)
    spans: list[tuple[int, int, str]] = []
    if "email" in wanted and "@" in text:
        spans.extend((m.start(), m.end(), "email") for m in _EMAIL_RE.finditer(text))
    if "ip" in wanted and text.count(":") >= 7:
        spans.extend((m.start(), m.end(), "ip") for m in _IPV6_RE.finditer(text))
    if not wanted & {"ip", "id_number", "card", "phone"}:
        regions = []
    else:
        regions = _number_regions(text)
    for lo, hi in regions:
        if "ip" in wanted:
            spans.extend((m.start(), m.end(), "ip") for m in _IPV4_RE.finditer(text, lo, hi))
        if "id_number" in wanted:
            for m in _ID_RE.finditer(text, lo, hi):
                digits = re.sub(r"\D", "", m.group())
                if len(digits) == 12 and digits[0] != "0":
                    continue  # CCCD numbers start with a province code 001..096
                window = text[max(0, m.start() - _ID_CONTEXT_WINDOW) : m.start()]
                if _ID_CONTEXT_RE.search(window):
                    spans.append((m.start(), m.end(), "id_number"))
        if "card" in wanted:
            for m in _CARD_RE.finditer(text, lo, hi):
                digits = re.sub(r"\D", "", m.group())
                if _card_issuer_ok(digits) and luhn_ok(digits):
                    spans.append((m.start(), m.end(), "card"))
        if "phone" in wanted:
            for m in _PHONE_RE.finditer(text, lo, hi):
                span = _phone_span(m)
                if span:
                    spans.append((*span, "phone"))
    if not spans:
        return []
    spans.sort(key=lambda s: (s[0], -s[1]))
    merged: list[tuple[int, int, str]] = []
    for span in spans:
        if merged and span[0] < merged[-1][1]:
            continue  # overlaps an earlier, longer item (an IP inside an e-mail, ...)
        merged.append(span)
    return merged


def redact_pii(text: str, types: Iterable[str] = PII_TYPES) -> tuple[str, Counter]:
    """``text`` with each PII item replaced by its typed placeholder, and counts per type."""
    spans = find_pii(text, types)
    counts: Counter = Counter()
    if not spans:
        return text, counts
    parts: list[str] = []
    last = 0
    for start, end, kind in spans:
        parts.append(text[last:start])
        parts.append(PLACEHOLDERS[kind])
        counts[kind] += 1
        last = end
    parts.append(text[last:])
    return "".join(parts), counts
