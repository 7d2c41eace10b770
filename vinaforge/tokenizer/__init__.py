"""Tokenizer vocabulary work: train Vietnamese subwords, extend a base tokenizer, measure fertility.

- :mod:`.resolve` turns a name, path or hub id into a base tokenizer (``mistral-v0.1`` is the
  SentencePiece model shipped in the ``mistral-common`` package);
- :mod:`.corpus` reads and normalizes a corpus sample; :mod:`.candidates` counts syllable units
  and plans the new tokens (:mod:`.simulate` replays each BPE encoder word by word);
- :mod:`.extend_sp` / :mod:`.extend_bpe` write the merged SentencePiece model or byte-level BPE
  ``tokenizer.json`` as a Hugging Face folder; :mod:`.extend` ties them together;
- :mod:`.train`, :mod:`.fertility`, :mod:`.inspect`; :mod:`.stage` is the recipe stage.
"""
