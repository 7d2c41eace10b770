"""Automatic checks on every submission, reusing vinaforge's text core and curation filters.

Reused from vinaforge: language ID (:func:`vinaforge.text.langid.identify`), PII detection
(:func:`vinaforge.data.pii.find_pii`, Vietnamese phones, CCCD/CMND, cards, e-mail, IP), the
flagged-words filter of the curation pipeline (its word list and phrase matcher) and the
syllable shingles of its MinHash dedup (:func:`vinaforge.data.dedup.syllable_shingles`).

Hand-written: near-duplicate search against everything already submitted. The curation dedup
is a batch job over files; here each new message is compared with the database as it arrives,
through MinHash LSH band keys stored in a table (``message_bands``, indexed): candidates are the
messages that share a band, confirmed by the full signature. 64 hashes in 16 bands of 4 rows
find pairs above ~0.5 Jaccard with high probability; the threshold is a setting.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import xxhash
from sqlalchemy import select
from sqlalchemy.orm import Session

from vinaforge_collect.config import Settings
from vinaforge_collect.models import Message, MessageBand

N_HASHES = 64
BANDS = 16
SHINGLE = 3
_rng = np.random.default_rng(20261126)
_A = _rng.integers(1, 2**63, size=N_HASHES, dtype=np.uint64) | np.uint64(1)
_B = _rng.integers(0, 2**63, size=N_HASHES, dtype=np.uint64)
# vinaforge's syllable tokenizer keeps a one-entry cache of the last text: serialise our calls.
_text_lock = threading.Lock()
_flagged = None


@dataclass
class CheckResult:
    """Errors refuse a submission; warnings are shown to the author (PII) and recorded."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    signature: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _flagged_filter():
    global _flagged
    if _flagged is None:
        from vinaforge.data.config import FlaggedWordsConfig
        from vinaforge.data.filters import FlaggedWordsFilter

        _flagged = FlaggedWordsFilter(FlaggedWordsConfig())
    return _flagged


def minhash_signature(text: str) -> np.ndarray | None:
    """64 min-hashes (uint32) of the text's lower-cased syllable shingles; None if it has no syllables."""
    from vinaforge.data.dedup import syllable_shingles
    from vinaforge.data.textstats import tokens_of

    n = min(SHINGLE, len(tokens_of(text).lower))
    if n == 0:
        return None
    shingles = syllable_shingles(text, n)
    with np.errstate(over="ignore"):
        hashed = shingles[:, None] * _A[None, :] + _B[None, :]
    return (hashed >> np.uint64(32)).astype(np.uint32).min(axis=0)


def band_keys(sig: np.ndarray) -> list[int]:
    rows = N_HASHES // BANDS
    return [
        xxhash.xxh64_intdigest(sig[b * rows : (b + 1) * rows].tobytes(), seed=b) & 0x7FFFFFFFFFFFFFFF
        for b in range(BANDS)
    ]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def find_near_duplicate(s: Session, sig: np.ndarray, threshold: float) -> tuple[int, float] | None:
    """The most similar stored (not rejected) message at or above ``threshold``."""
    keys = band_keys(sig)
    candidates = s.scalars(select(MessageBand.message_id).where(MessageBand.key.in_(keys)).distinct()).all()
    best: tuple[int, float] | None = None
    for mid, blob, state in s.execute(
        select(Message.id, Message.minhash, Message.review_state).where(Message.id.in_(candidates[:200]))
    ):
        if blob is None or state == "rejected":
            continue
        sim = similarity(sig, np.frombuffer(blob, dtype=np.uint32))
        if sim >= threshold and (best is None or sim > best[1]):
            best = (mid, sim)
    return best


def store_signature(s: Session, message: Message, sig: np.ndarray | None) -> None:
    if sig is None:
        return
    message.minhash = sig.tobytes()
    for band, key in enumerate(band_keys(sig)):
        s.add(MessageBand(message_id=message.id, band=band, key=key))


def analyse_text(settings: Settings, text: str) -> CheckResult:
    """Every check that needs no database: length, language, flagged words, PII, the signature.

    Run before the write transaction opens, so that writers hold the database lock only for
    the near-duplicate lookup and the insert.
    """
    from vinaforge.data.pii import find_pii
    from vinaforge.data.textstats import tokens_of
    from vinaforge.text.langid import identify

    res = CheckResult()
    stripped = text.strip()
    n = len(stripped)
    res.info["chars"] = n
    if n < settings.min_chars:
        res.errors.append(f"Quá ngắn: {n} ký tự (tối thiểu {settings.min_chars}).")
    if n > settings.max_chars:
        res.errors.append(f"Quá dài: {n} ký tự (tối đa {settings.max_chars}).")
        return res
    with _text_lock:
        label, score = identify(stripped)
        res.info["lang"], res.info["lang_score"] = label, round(float(score), 3)
        if label != settings.language or score < settings.min_language_score:
            res.errors.append(f"Không phải tiếng Việt (nhận dạng: {label}, {score:.2f}).")
        ratio = _flagged_filter().flagged_ratio(tokens_of(stripped).lower)
        res.info["flagged_ratio"] = round(ratio, 4)
        if ratio > settings.max_flagged_ratio:
            res.errors.append("Có từ ngữ bị cấm (thô tục, cờ bạc, khiêu dâm).")
        pii = sorted({kind for _, _, kind in find_pii(stripped)})
        if pii:
            res.info["pii"] = pii
            res.warnings.append("Có thể chứa thông tin cá nhân: " + ", ".join(pii) + ".")
        res.signature = minhash_signature(stripped)
    return res


def check_text(s: Session, settings: Settings, text: str, pre: CheckResult | None = None) -> CheckResult:
    """All checks: :func:`analyse_text` (or its result ``pre``) plus near-duplicates in the database."""
    res = pre if pre is not None else analyse_text(settings, text)
    if res.signature is not None and not res.errors:
        dup = find_near_duplicate(s, res.signature, settings.near_dup_threshold)
        if dup is not None:
            res.info["near_duplicate_of"], res.info["similarity"] = dup[0], round(dup[1], 3)
            res.errors.append(f"Gần trùng với tin nhắn #{dup[0]} đã có (giống {dup[1]:.0%}).")
    return res


def warm_up(settings: Settings) -> None:
    """Load the language model and word lists now, not during the first user's submission."""
    analyse_text(settings, "Xin chào, đây là một câu tiếng Việt để khởi động bộ kiểm tra.")


def redacted(text: str) -> str:
    from vinaforge.data.pii import redact_pii

    return redact_pii(text)[0]
