"""The Vietnamese text core: normalization, legacy encodings, syllables, validation, language ID.

Every later stage uses it. Importing this package is cheap: submodules are imported on use, and
the language-ID model loads on the first call to :func:`vinaforge.text.langid.identify`.

- :mod:`~vinaforge.text.normalize`: ``NormalizeConfig``, ``normalize_text``
- :mod:`~vinaforge.text.legacy`: ``detect_legacy``, ``decode_legacy``, ``encode_legacy``
- :mod:`~vinaforge.text.syllables`: ``SYLLABLE_RE``, ``iter_syllables``, ``count_syllables``
- :mod:`~vinaforge.text.validate`: ``is_valid_syllable``, ``valid_syllable_ratio``, ``diacritic_ratio``
- :mod:`~vinaforge.text.langid`: ``identify``, ``identify_many``
- :mod:`~vinaforge.text.sentences`: ``split_sentences``
- :mod:`~vinaforge.text.wordseg`: ``segment_words`` (pyvi or underthesea)
- :mod:`~vinaforge.text.stats`: ``TextStats``, ``doc_stats``, ``text_stats``
"""

from vinaforge.text.normalize import NormalizeConfig, normalize_text
from vinaforge.text.syllables import SYLLABLE_RE, count_syllables, iter_syllables
from vinaforge.text.validate import diacritic_ratio, is_valid_syllable, valid_syllable_ratio

__all__ = [
    "SYLLABLE_RE",
    "NormalizeConfig",
    "count_syllables",
    "diacritic_ratio",
    "is_valid_syllable",
    "iter_syllables",
    "normalize_text",
    "valid_syllable_ratio",
]
