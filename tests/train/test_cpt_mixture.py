"""Mixture: realised proportions follow the weights; the curriculum switches; the stream resumes exactly."""

from __future__ import annotations

import pytest

from vinaforge.train.config import MixtureSegment, SourceConfig
from vinaforge.train.mixture import MixtureError, MixtureSampler, weights_at
from vinaforge.train.packing import pack_source


@pytest.fixture(scope="module")
def sources(tmp_path_factory, tokenizer, corpus_dir):
    root = tmp_path_factory.mktemp("mix")
    high = pack_source(
        "high", SourceConfig(paths=[str(corpus_dir / "high")]), tokenizer, root, progress=False
    )
    low = pack_source("low", SourceConfig(paths=[str(corpus_dir / "low")]), tokenizer, root, progress=False)
    # three named sources as in VinaSmol's vi/en/code mixture (the same files serve as stand-ins)
    return {"vi": high, "en": low, "code": high}


def test_realised_proportions_within_two_points(sources):
    weights = {"vi": 0.55, "en": 0.40, "code": 0.05}
    sampler = MixtureSampler(sources, seq_len=64, seed=1)
    for _ in range(100):
        sampler.draw(100, weights)
    realised = sampler.realised()
    assert sum(sampler.drawn.values()) == 10_000
    for name, w in weights.items():
        assert abs(realised[name] - w) <= 0.02, (name, realised[name], w)


def test_every_block_used_once_per_pass(sources):
    sampler = MixtureSampler({"vi": sources["vi"]}, seq_len=64, seed=0)
    n = sampler.n_blocks["vi"]
    picks = [b for _, b in sampler.draw(2 * n, {"vi": 1.0})]
    assert sorted(picks[:n]) == list(range(n)) and sorted(picks[n:]) == list(range(n))
    assert picks[:n] != picks[n:]  # a new shuffle each pass
    assert sampler.passes["vi"] == 1


def test_state_dict_resumes_the_same_stream(sources):
    weights = {"vi": 0.5, "en": 0.5}
    a = MixtureSampler(sources, seq_len=64, seed=3)
    a.draw(57, weights)
    state = a.state_dict()
    expected = a.draw(300, weights)
    b = MixtureSampler(sources, seq_len=64, seed=3)
    b.load_state_dict(state)
    assert b.draw(300, weights) == expected


def test_curriculum_segments():
    segs = [MixtureSegment(until=0.3, weights={"high": 1}), MixtureSegment(weights={"high": 3, "low": 1})]
    assert weights_at(segs, 0.0) == {"high": 1.0}
    assert weights_at(segs, 0.29) == {"high": 1.0}
    assert weights_at(segs, 0.3) == {"high": 0.75, "low": 0.25}
    assert weights_at(segs, 0.999) == {"high": 0.75, "low": 0.25}


def test_unknown_or_too_small_source(sources):
    sampler = MixtureSampler(sources, seq_len=64)
    with pytest.raises(MixtureError, match="'parallel', which is not a data source"):
        sampler.draw(4, {"vi": 0.5, "parallel": 0.5})
    huge = MixtureSampler(sources, seq_len=10**7)
    with pytest.raises(MixtureError, match="fewer than one sequence"):
        huge.draw(1, {"vi": 1.0})
