"""One loop iteration with the reward-model ranker on tiny models: every step runs, a killed
iteration resumes without redoing finished steps, and the new policy is judged against the old."""

from __future__ import annotations

import json

import pytest

from vinaforge.loop.iteration import Config, LoopError, run_iteration
from vinaforge.tune.common import TrainSettings


@pytest.fixture(scope="module")
def reward_model(tiny_dir, vi_over_en, tmp_path_factory):
    from vinaforge.tune.reward import Config as RewardConfig
    from vinaforge.tune.reward import train_reward

    out = tmp_path_factory.mktemp("rm0")
    cfg = RewardConfig(model=str(tiny_dir), data=[str(vi_over_en)], mode="full", eval_fraction=0.0,
                       training=TrainSettings(max_steps=2, batch_size=8, threads=2))  # fmt: skip
    train_reward(cfg, out)
    return out / "final"


def _cfg(policy, prompts, rm, **kw) -> Config:
    return Config(
        policy=str(policy), prompts=[str(prompts)], max_prompts=6, samples=3,
        sampling={"temperature": 1.0, "max_new_tokens": 8, "seed": 0},
        ranker={"kind": "reward_model", "reward_model": str(rm)},
        reward={"eval_fraction": 0.34, "training": {"max_steps": 2, "batch_size": 4, "threads": 2}},
        rl={"num_generations": 2, "max_completion_length": 8, "eval_max_new_tokens": 8,
            "training": {"max_steps": 1, "batch_size": 4, "threads": 2, "save_steps": 1000}},
        **kw,
    )  # fmt: skip


def test_iteration_runs_and_resumes(tiny_dir, vi_prompts, reward_model, tmp_path, monkeypatch):
    import vinaforge.loop.iteration as it

    calls = {"rl": 0}
    real_rl = it.step_rl

    def killed_rl(*a, **kw):  # the first attempt dies in the RL step, like a kill -9 there
        calls["rl"] += 1
        if calls["rl"] == 1:
            raise KeyboardInterrupt
        return real_rl(*a, **kw)

    monkeypatch.setattr(it, "step_rl", killed_rl)
    cfg = _cfg(tiny_dir, vi_prompts, reward_model, judge=str(tiny_dir),
               judge_settings={"limit": 1, "categories": ["culture_history"], "answer_max_new_tokens": 8,
                               "judge_max_new_tokens": 8, "n_bootstrap": 20, "n_shuffles": 5})  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run_iteration(cfg, tmp_path)
    done = {p.parent.name: json.loads(p.read_text())["finished"] for p in tmp_path.glob("steps/*/.done")}
    assert sorted(done) == ["1-prompts", "2-sample", "3-rank", "4-rankings", "5-reward"]
    figures = run_iteration(cfg, tmp_path)
    again = {p.parent.name: json.loads(p.read_text())["finished"] for p in tmp_path.glob("steps/*/.done")}
    assert all(again[k] == v for k, v in done.items()), "finished steps were redone"
    assert set(figures) == {"prompts", "sample", "rank", "rankings", "reward", "rl", "judge"}
    rankings = [json.loads(x) for x in (tmp_path / "steps/4-rankings/rankings.jsonl").read_text().splitlines()]
    assert rankings and all(len(r["replies"]) == len(r["ranks"]) >= 2 for r in rankings)
    assert (tmp_path / "steps/6-rl/final/config.json").is_file()
    # a random tiny judge gives unparsable verdicts, so the ratings may hold no games; the step still ran
    assert "elo" in figures["judge"]["ratings"] and (tmp_path / "steps/7-judge").is_dir()
    # as a recipe stage, its outputs sit at the top of the stage folder, where `@loop/policy` looks
    from types import SimpleNamespace

    from vinaforge.loop import stage

    for _ in range(2):  # the second time, as after a resume, the links are replaced
        result = stage.run(cfg, SimpleNamespace(work_dir=tmp_path, seed=0))
    assert result.outputs == {"policy": "policy", "reward_model": "reward_model", "rankings": "rankings.jsonl"}
    assert (tmp_path / "policy/config.json").is_file() and (tmp_path / "reward_model/config.json").is_file()
    assert (tmp_path / "rankings.jsonl").read_text() == (tmp_path / "steps/4-rankings/rankings.jsonl").read_text()


def test_empty_prompts(tiny_dir, reward_model, tmp_path):
    empty = tmp_path / "p.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(LoopError, match="empty prompt set"):
        run_iteration(_cfg(tiny_dir, empty, reward_model), tmp_path / "w")


def test_ranker_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="needs `app_token_env`"):
        Config(policy=str(tmp_path), prompts=[str(tmp_path)], ranker={"kind": "app", "app_url": "http://127.0.0.1:1"})
    with pytest.raises(ValueError, match="needs `judge`"):
        Config(policy=str(tmp_path), prompts=[str(tmp_path)], ranker={"kind": "judge"})


def test_simulated_raters_rank_every_prompt_once_each(tmp_path):
    from vinaforge.loop.iteration import step_rank

    samples = tmp_path / "samples.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Câu hỏi {i}?"}],
             "replies": ["Hà Nội là thủ đô của Việt Nam.", "và và và và và và", "Hanoi is the capital."]}
            for i in range(4)]  # fmt: skip
    samples.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = Config(policy=str(tmp_path), prompts=[str(samples)], ranker={"kind": "simulated", "raters": 3, "noise": 0.05})
    info = step_rank(cfg, samples, tmp_path, seed=7)
    lists = [json.loads(x) for x in (tmp_path / "rankings.jsonl").read_text().splitlines()]
    assert info["ranked"] + info["unusable"] == 4 * 3 and len(lists) == info["ranked"] == 12
    assert {r["ranked_by"] for r in lists} == {"simulated-rater-0", "simulated-rater-1", "simulated-rater-2"}
    # with little noise every rater puts the fluent Vietnamese reply first and English last
    assert all(r["replies"][0].startswith("Hà Nội") and r["replies"][-1].startswith("Hanoi") for r in lists)
    again = tmp_path / "again"
    again.mkdir()
    step_rank(cfg, samples, again, seed=7)
    assert (again / "rankings.jsonl").read_text() == (tmp_path / "rankings.jsonl").read_text()  # seeded
    # noisy raters disagree; the reward reader keeps each rater's list as its own comparison
    from vinaforge.tune.reward import Config as RewardConfig
    from vinaforge.tune.reward import read_reward_data

    noisy = tmp_path / "noisy"
    noisy.mkdir()
    step_rank(cfg.model_copy(update={"ranker": cfg.ranker.model_copy(update={"noise": 5.0})}), samples, noisy, seed=7)
    data = read_reward_data([str(noisy / "rankings.jsonl")], RewardConfig(model=str(tmp_path), data=[str(noisy)]))
    assert data.rater_disagreements > 0 and len(data.pairs) == 12 * 3


def test_loop_cli_bad_paths_are_one_line_errors(tmp_path, vi_prompts):
    """A --work under a file and a policy that is not a model folder: one line naming it, no traceback."""
    from typer.testing import CliRunner

    from vinaforge.cli import app

    cfg = tmp_path / "loop.yaml"
    cfg.write_text(f"policy: {tmp_path}\nprompts: [{vi_prompts}]\nranker: {{kind: simulated}}\n", encoding="utf-8")
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    runner = CliRunner()
    under_file = runner.invoke(app, ["loop", "run", "-c", str(cfg), "-o", str(afile / "work")])
    assert under_file.exit_code == 2 and "is a file, so the folder cannot be created" in under_file.output
    not_model = runner.invoke(app, ["loop", "run", "-c", str(cfg), "-o", str(tmp_path / "work")])
    assert not_model.exit_code == 2 and "has no config.json" in not_model.output
    for result in (under_file, not_model):
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
