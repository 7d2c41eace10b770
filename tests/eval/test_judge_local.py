"""The local path (vinaforge.generate's LocalBackend) and the CLI, with tiny randomly initialised models.

The models are Mistral-architecture transformers with random weights and the Mistral v0.1
sentencepiece tokenizer shipped in ``mistral-common``. Their answers and verdicts are noise; the
tests check that the pipeline runs, resumes, and records what the judge said honestly (a
verdict only where the raw output holds a tag, every call counted). A model without a chat
template is prompted in vinaforge.chat's ``vi_qa`` format.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typer.testing import CliRunner  # noqa: E402

from vinaforge.eval.judge.answers import generate_answers, load_answers  # noqa: E402
from vinaforge.eval.judge.backends import accepts_system, complete, make_backend, merge_system  # noqa: E402
from vinaforge.eval.judge.cli import app  # noqa: E402
from vinaforge.eval.judge.judging import JUDGMENTS_FILE, run_judging  # noqa: E402
from vinaforge.eval.judge.prompts import answer_prompt, judge_prompt, parse_verdict  # noqa: E402
from vinaforge.eval.judge.questions import load_questions, select_questions  # noqa: E402
from vinaforge.eval.judge.report import write_ratings  # noqa: E402
from vinaforge.eval.judge.store import read_jsonl  # noqa: E402
from vinaforge.generate import GenRequest, SamplingParams  # noqa: E402
from vinaforge.generate.local import LocalBackend  # noqa: E402
from vinaforge.model.load import ModelLoadError  # noqa: E402

NO_SYSTEM_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% elif m['role'] == 'user' %}"
    "[INST] {{ m['content'] }} [/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Two tiny models: plain prompt format, and a chat template without a system role."""
    import mistral_common
    from transformers import LlamaTokenizer

    from vinaforge.model.tiny import build_tiny_model, save_model

    root = tmp_path_factory.mktemp("tiny")
    tok_dir = root / "tok"
    tok_dir.mkdir()
    shutil.copy(
        Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1", tok_dir / "tokenizer.model"
    )
    out = {}
    for name, seed, template in (("plain", 1, None), ("chat", 2, NO_SYSTEM_TEMPLATE)):
        tok = LlamaTokenizer.from_pretrained(tok_dir)
        if template:
            tok.chat_template = template
        model = build_tiny_model(
            "mistral", vocab_size=32000, layers=2, hidden=64, heads=4, kv_heads=2, max_position=4096,
            bos_token_id=1, eos_token_id=2, seed=seed,
        )  # fmt: skip
        out[name] = save_model(model, tok, root / name)
    return out


@pytest.fixture(scope="module")
def two_questions():
    return select_questions(load_questions(), ["math", "safety"], limit=1)


def test_local_answers_are_recorded_and_resumed(tiny, two_questions, tmp_path: Path) -> None:
    backend = LocalBackend(str(tiny["plain"]), batch_size=2)
    params = SamplingParams(max_new_tokens=6)
    assert backend.describe()["chat_template"] == "vi_qa" and backend.describe()["random_init"] is True
    seen = backend.prompt_of(GenRequest(messages=answer_prompt("Hai cộng hai bằng mấy?").messages))
    assert seen == "<s>### Câu hỏi:\nHai cộng hai bằng mấy?\n\n### Trả lời:"  # vinaforge.chat's vi_qa
    counts = generate_answers(two_questions, backend, "plain", tmp_path, params, progress=False)
    assert counts == {"questions": 2, "done_before": 0, "new": 2, "failed": 0}
    recs = read_jsonl(tmp_path / "plain.jsonl")
    assert [r["question_id"] for r in recs] == [q.id for q in two_questions]
    for r in recs:
        assert r["status"] == "ok" and isinstance(r["answer"], str) and r["error"] is None
        assert r["finish_reason"] in ("stop", "length") and 0 <= r["new_tokens"] <= 6
        assert r["generator"]["model"] == str(tiny["plain"]) and r["generator"]["max_new_tokens"] == 6
    again = generate_answers(two_questions, backend, "plain", tmp_path, params, progress=False)
    assert again == {"questions": 2, "done_before": 2, "new": 0, "failed": 0}
    assert len(read_jsonl(tmp_path / "plain.jsonl")) == 2
    # greedy decoding is deterministic: the same prompt gives the same answer, alone or batched
    [solo] = complete(backend, [answer_prompt(two_questions[1].question)], params)
    assert solo.text.strip() == recs[1]["answer"]


def test_chat_template_is_used_and_a_system_message_merged(tiny) -> None:
    backend = make_backend(str(tiny["chat"]), "judge")
    assert backend.describe()["chat_template"] == "own"
    # the template refuses a system role; the local backend folds it into the first user turn itself
    assert accepts_system(backend)
    prompt = judge_prompt("Câu hỏi?", "Trả lời một.", "Trả lời hai.")
    text = backend.prompt_of(GenRequest(messages=merge_system(prompt.messages)))
    assert backend.prompt_of(GenRequest(messages=prompt.messages)) == text
    assert text.startswith("<s>[INST] Bạn là một giám khảo công tâm.")
    assert text.rstrip().endswith("[/INST]") and "[Bắt đầu câu trả lời của trợ lý A]" in text
    ids = backend.encode(GenRequest(messages=merge_system(prompt.messages)))
    assert ids[0] == 1 and ids[1] != 1  # one BOS, from the template
    [c] = complete(backend, [prompt], SamplingParams(max_new_tokens=4), system_ok=False)
    assert c.ok


def test_local_judge_records_noise_verdicts_honestly(tiny, two_questions, tmp_path: Path) -> None:
    answers_dir = tmp_path / "answers"
    for name in ("plain", "chat"):
        b = LocalBackend(str(tiny[name]))
        generate_answers(two_questions, b, name, answers_dir, SamplingParams(max_new_tokens=5), progress=False)
    answers, skipped = load_answers(answers_dir, ["plain", "chat"], two_questions)
    assert skipped == []
    judge = LocalBackend(str(tiny["plain"]), batch_size=4)
    counts = run_judging(two_questions, answers, judge, tmp_path, progress=False,
                         params=SamplingParams(max_new_tokens=8))  # fmt: skip
    assert counts["calls"] == 4 and counts["ok"] + counts["unparseable"] == 4 and counts["failed"] == 0
    recs = read_jsonl(tmp_path / JUDGMENTS_FILE)
    assert len(recs) == 4
    for r in recs:
        assert r["verdict"] == parse_verdict(r["raw"])
        assert r["status"] == ("ok" if r["verdict"] else "unparseable")
    ratings = write_ratings(tmp_path)
    c = ratings["counts"]
    assert c["calls_ok"] + c["calls_unparseable"] == 4 and c["games"] == 2
    assert ratings["notes"][0] == "the judge is a randomly initialised model: its verdicts are noise"
    assert (tmp_path / "leaderboard.md").is_file()


def test_prompt_longer_than_the_judge_context_is_a_recorded_failure(
    tiny, two_questions, tmp_path: Path
) -> None:
    long = "Đây là một câu trả lời rất dài. " * 400  # ~3,000 tokens each: over the 4,096 context
    answers = {"x": {q.id: long for q in two_questions}, "y": {q.id: "Không biết." for q in two_questions}}
    judge = LocalBackend(str(tiny["plain"]))
    counts = run_judging(two_questions, answers, judge, tmp_path, max_answer_chars=None, progress=False,
                         params=SamplingParams(max_new_tokens=8))  # fmt: skip
    assert counts["failed"] == 4
    rec = read_jsonl(tmp_path / JUDGMENTS_FILE)[0]
    assert "exceeds the model's context of 4096 tokens" in rec["error"]
    assert write_ratings(tmp_path)["counts"]["games_failed"] == 2


def test_model_that_does_not_load_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        LocalBackend(str(tmp_path / "nope"))


@pytest.mark.slow
def test_cli_answer_run_ratings_and_all(tiny, tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "40"})  # a narrow terminal: no message may be wrapped
    answers, results = tmp_path / "answers", tmp_path / "results"
    common = ["--categories", "math", "--limit", "1", "--max-new-tokens", "4"]
    for name in ("plain", "chat"):
        r = runner.invoke(
            app, ["answer", "--model", str(tiny[name]), "--name", name, "--output", str(answers), *common]
        )
        assert r.exit_code == 0, r.output
        assert "1 new answers" in r.output
    r = runner.invoke(
        app,
        [
            "run",
            "--answers",
            str(answers),
            "--judge",
            str(tiny["plain"]),
            "--output",
            str(results),
            "--bootstrap",
            "20",
            *common,
        ],
    )
    assert r.exit_code == 0, r.output
    assert {p.name for p in results.iterdir()} >= {
        "judgments.jsonl",
        "games.jsonl",
        "ratings.json",
        "leaderboard.md",
    }
    assert len(read_jsonl(results / JUDGMENTS_FILE)) == 2
    r = runner.invoke(app, ["ratings", "--judgments", str(results / JUDGMENTS_FILE), "--bootstrap", "10"])
    assert r.exit_code == 0, r.output
    assert json.loads((results / "ratings.json").read_text())["settings"]["n_bootstrap"] == 10

    # bad input: a model without answers, a model folder that does not exist, a broken question file
    r = runner.invoke(
        app,
        [
            "run",
            "--answers",
            str(answers),
            "--models",
            "plain,ghost",
            "--judge",
            "x",
            "--output",
            str(results),
        ],
    )
    assert r.exit_code == 2 and "ghost.jsonl not found" in r.output
    r = runner.invoke(
        app, ["answer", "--model", str(tmp_path / "missing"), "--name", "m", "--output", str(answers)]
    )
    assert r.exit_code == 2 and "does not exist" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "category": "x", "question": "Q"}\n{"id": "b"}\n', encoding="utf-8")
    r = runner.invoke(app, ["questions", "--questions", str(bad)])
    assert r.exit_code == 2 and "bad.jsonl:2" in r.output
    r = runner.invoke(
        app, ["answer", "--model", str(tiny["plain"]), "--name", "no/slash", "--output", str(answers)]
    )
    assert r.exit_code == 2 and "model name 'no/slash'" in r.output

    # all steps from one YAML config, with a --set override
    cfg = tmp_path / "judge.yaml"
    cfg.write_text(
        f"models:\n  plain: {tiny['plain']}\n  chat: {tiny['chat']}\njudge: {tiny['plain']}\n"
        "categories: [math]\nlimit: 1\nanswer_max_new_tokens: 4\njudge_max_new_tokens: 4\nn_bootstrap: 10\n",
        encoding="utf-8",
    )
    r = runner.invoke(
        app, ["all", "--config", str(cfg), "--set", "n_shuffles=3", "--output", str(tmp_path / "all")]
    )
    assert r.exit_code == 0, r.output
    ratings = json.loads((tmp_path / "all" / "ratings.json").read_text())
    assert ratings["settings"]["n_shuffles"] == 3 and ratings["counts"]["judge_calls"] == 2
    r = runner.invoke(
        app, ["all", "--config", str(cfg), "--set", "lang=fr", "--output", str(tmp_path / "all")]
    )
    assert r.exit_code == 2 and "lang" in r.output


def test_judge_recipe_stage_runs_reports_and_is_reused(tiny, tmp_path: Path) -> None:
    """The `judge` stage kind takes the same config as `eval judge all` and reports to the card."""
    import yaml

    from vinaforge.recipe import load_recipe
    from vinaforge.runner import run_recipe

    recipe_path = tmp_path / "judge.yaml"
    stage = {
        "models": {"plain": str(tiny["plain"]), "chat": str(tiny["chat"])},
        "judge": str(tiny["plain"]),
        "categories": ["math"],
        "limit": 1,
        "answer_max_new_tokens": 4,
        "judge_max_new_tokens": 4,
        "n_bootstrap": 10,
        "n_shuffles": 3,
    }
    recipe_path.write_text(
        yaml.safe_dump({"name": "judgetest", "run_dir": str(tmp_path / "runs"), "stages": {"judge": stage}}),
        encoding="utf-8",
    )
    run_dir = run_recipe(load_recipe(recipe_path))
    ratings = json.loads((run_dir / "judge" / "ratings.json").read_text(encoding="utf-8"))
    assert ratings["counts"]["judge_calls"] == 2 and set(ratings["models"]) <= {"plain", "chat"}
    assert {p.name for p in (run_dir / "judge" / "answers").iterdir()} == {"plain.jsonl", "chat.jsonl"}
    card = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "## judge (`judge`)" in card and "LLM-as-judge leaderboard" in card
    assert "randomly initialised model: its verdicts are noise" in card
    result = json.loads((run_dir / "judge" / "result.json").read_text(encoding="utf-8"))
    assert result["metrics"]["games"] == 1
    assert [f["path"] for f in result["figures"]] in ([], ["ratings.png"])  # no plot without a rated game
    run_recipe(load_recipe(recipe_path))  # unchanged config and inputs: reused, nothing judged again
    assert len(read_jsonl(run_dir / "judge" / JUDGMENTS_FILE)) == 2
    bad = dict(stage, models={"only": str(tiny["plain"])})
    recipe_path.write_text(yaml.safe_dump({"name": "judgetest", "stages": {"judge": bad}}), encoding="utf-8")
    with pytest.raises(Exception, match="at least two models"):
        load_recipe(recipe_path)
