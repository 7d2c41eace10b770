"""Weighted sampling of training sequences from several packed sources, with a curriculum.

Every optimizer step draws its whole global batch (all processes, all micro-batches) from one
sampler whose state is the same on every process: a PCG64 generator picks the source of each
sequence by weight, and each source hands out its fixed-length blocks in a shuffled order, one
shuffle per pass over the source. The state (generator, per-source cursor and pass, counts) is a
small JSON-able dict, so a resumed run continues the exact same stream.

The weights can change with progress (a curriculum over quality tiers, as in SeaLLMs: high-quality
only for the first X% of tokens, then high and low together); :func:`weights_at` picks the segment.

Hand-written: the samplers of ``datasets`` (``interleave_datasets``) and torch's
``WeightedRandomSampler`` have neither per-step curriculum weights nor a resumable state that
survives a change of weights.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from vinaforge.train.config import MixtureSegment
from vinaforge.train.packing import PackedSource

log = logging.getLogger(__name__)


class MixtureError(ValueError):
    """A mixture that cannot be sampled; the message names the source."""


def weights_at(segments: Sequence[MixtureSegment], fraction: float) -> dict[str, float]:
    """Normalised weights of the curriculum segment that covers ``fraction`` (0 <= fraction < 1)."""
    for seg in segments:
        if fraction < seg.until:
            return seg.normalised()
    return segments[-1].normalised()


def natural_weights(sources: Mapping[str, PackedSource]) -> dict[str, float]:
    """Weights proportional to each source's size (what you get without a mixture)."""
    total = sum(s.n_tokens for s in sources.values())
    return {name: s.n_tokens / total for name, s in sources.items()}


def proportions(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


class MixtureSampler:
    """Draws ``(source, block index)`` pairs by weight; ``state_dict`` makes the stream resumable."""

    def __init__(self, sources: Mapping[str, PackedSource], seq_len: int, seed: int = 0):
        self.sources = dict(sources)
        self.seq_len = seq_len
        self.seed = seed
        self.n_blocks = {name: src.n_blocks(seq_len) for name, src in self.sources.items()}
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.cursor = dict.fromkeys(self.sources, 0)
        self.passes = dict.fromkeys(self.sources, 0)
        self.drawn: Counter[str] = Counter()
        self._perm_cache: dict[str, tuple[int, np.ndarray]] = {}

    def check(self, weights: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
        names = [n for n, w in weights.items() if w > 0]
        for name in names:
            if name not in self.sources:
                known = ", ".join(self.sources)
                raise MixtureError(
                    f"mixture weight for {name!r}, which is not a data source (sources: {known})"
                )
            if self.n_blocks[name] == 0:
                raise MixtureError(
                    f"data source {name!r} has {self.sources[name].n_tokens} tokens, fewer than one sequence "
                    f"of seq_len={self.seq_len}: add data, lower seq_len or give it weight 0"
                )
        if not names:
            raise MixtureError("every mixture weight is 0")
        p = np.asarray([weights[n] for n in names], dtype=np.float64)
        return names, p / p.sum()

    def _permutation(self, name: str) -> np.ndarray:
        cached = self._perm_cache.get(name)
        if cached is None or cached[0] != self.passes[name]:
            index = list(self.sources).index(name)
            rng = np.random.default_rng([self.seed, index, self.passes[name]])
            perm = rng.permutation(self.n_blocks[name])
            if self.n_blocks[name] < 2**32:
                perm = perm.astype(np.uint32)
            self._perm_cache[name] = (self.passes[name], perm)
        return self._perm_cache[name][1]

    def _next_block(self, name: str) -> int:
        if self.cursor[name] >= self.n_blocks[name]:
            self.passes[name] += 1
            self.cursor[name] = 0
            log.info(
                "data source %s: all %d sequences used, starting pass %d",
                name,
                self.n_blocks[name],
                self.passes[name] + 1,
            )
        block = int(self._permutation(name)[self.cursor[name]])
        self.cursor[name] += 1
        return block

    def draw(self, n: int, weights: Mapping[str, float]) -> list[tuple[str, int]]:
        """The next ``n`` sequences of the stream, each source chosen with probability ``weights``."""
        names, p = self.check(weights)
        choices = self.rng.choice(len(names), size=n, p=p)
        out = []
        for c in choices:
            name = names[int(c)]
            out.append((name, self._next_block(name)))
            self.drawn[name] += 1
        return out

    def realised(self) -> dict[str, float]:
        """Share of the sequences drawn so far that came from each source."""
        return proportions({name: self.drawn.get(name, 0) for name in self.sources})

    def state_dict(self) -> dict:
        return {
            "seed": self.seed,
            "seq_len": self.seq_len,
            "rng": self.rng.bit_generator.state,
            "cursor": dict(self.cursor),
            "passes": dict(self.passes),
            "drawn": dict(self.drawn),
            "n_blocks": dict(self.n_blocks),
        }

    def load_state_dict(self, state: Mapping) -> None:
        if state["n_blocks"] != self.n_blocks or state["seq_len"] != self.seq_len:
            raise MixtureError(
                f"the packed data changed since the checkpoint (sequences per source then {state['n_blocks']}, "
                f"now {self.n_blocks}): cannot resume the same data stream"
            )
        self.seed = state["seed"]
        self.rng.bit_generator.state = state["rng"]
        self.cursor = dict(state["cursor"])
        self.passes = dict(state["passes"])
        self.drawn = Counter(state["drawn"])
        self._perm_cache.clear()
