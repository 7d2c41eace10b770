"""Self-preference pairs: best vs worst of N samples above a margin, every score kept, resumable."""

from __future__ import annotations

import json

import pytest

from vinaforge.tune.self_preference import Config, build_pairs, parse_score


class Interrupt(RuntimeError):
    pass


class CountingBackend:
    """A real local backend that counts generations per prompt and can be 'killed' after k prompts."""

    def __init__(self, inner, kill_after=None):
        self.inner, self.kill_after, self.calls = inner, kill_after, []

    def generate(self, requests, params=None):
        if self.kill_after is not None and len(self.calls) >= self.kill_after:
            raise Interrupt("killed")
        self.calls.append(json.dumps(requests, ensure_ascii=False))
        return self.inner.generate(requests, params)


def test_parse_score():
    assert parse_score("Điểm: 8/10") == 8.0 and parse_score("10") == 10.0 and parse_score("không biết") is None


def test_resumable_and_pairs_best_vs_worst(tiny_dir, tmp_path, repo_root):
    from vinaforge.generate.local import LocalBackend

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}, ensure_ascii=False) + "\n"
                               for p in ["Xin chào", "Thủ đô Việt Nam?", "Kể tên một loài hoa.", "Hai cộng hai?"]),
                       encoding="utf-8")  # fmt: skip
    cfg = Config.model_validate({"prompts": [str(prompts)], "backend": {"model": str(tiny_dir)}, "n": 3,
                                 "sampling": {"temperature": 1.0, "max_new_tokens": 8, "seed": 0},
                                 "judge": {"kind": "vi_ratio"}, "margin": 0.0})  # fmt: skip
    local = LocalBackend(str(tiny_dir))
    first = CountingBackend(local, kill_after=2)
    with pytest.raises(Interrupt):
        build_pairs(cfg, tmp_path / "out", policy=first)
    second = CountingBackend(local)
    counts = build_pairs(cfg, tmp_path / "out", policy=second)
    assert len(first.calls) == 2 and len(second.calls) == 2  # no finished prompt generated twice
    assert not set(first.calls) & set(second.calls)
    assert counts["prompts"] == 4 and counts["pairs"] + counts["rejected"] == 4
    scores = [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert len(scores) == 4 and all(len(s["scores"]) == len(s["replies"]) for s in scores)
    for line in (tmp_path / "out" / "pairs.jsonl").read_text().splitlines():
        pair = json.loads(line)
        assert pair["chosen_score"] >= pair["rejected_score"] and pair["chosen"] != pair["rejected"]


def test_rules_judge_prefers_vietnamese_that_does_not_loop():
    from vinaforge.tune.self_preference import JudgeConfig, make_scorer

    score = make_scorer(JudgeConfig(kind="rules"), policy=None)
    s = score([{"role": "user", "content": "Thủ đô?"}], ["Hà Nội là thủ đô của Việt Nam.", "và và và và và", "", "Hanoi."])
    assert s[0] == 10.0 and s[0] > s[1] > s[2] == 0.0 and s[3] < s[1]
