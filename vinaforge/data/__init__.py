"""Corpus curation on datatrove: ``vinaforge data curate`` and the ``curate`` recipe stage.

Modules: :mod:`~vinaforge.data.config` (settings), :mod:`~vinaforge.data.readers` (readers
that never lose a record), :mod:`~vinaforge.data.filters` (input, language, Gopher/FineWeb on
syllables, flagged words), :mod:`~vinaforge.data.blocks` (normalization, PII, writers),
:mod:`~vinaforge.data.pii`, :mod:`~vinaforge.data.dedup` (exact + MinHash on syllable shingles),
:mod:`~vinaforge.data.tiers` (quality score, tiers), :mod:`~vinaforge.data.curate` (the stage
graph and executors), :mod:`~vinaforge.data.stats` (funnel, ``stats.json``, report). Importing
this package is cheap; datatrove is imported by the modules that need it.
"""
