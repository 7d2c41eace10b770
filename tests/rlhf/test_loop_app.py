"""One community-loop iteration against a real collection app: push → people rank → reward → RL.

The app runs as ``vinaforge collect serve`` on SQLite in a subprocess on 127.0.0.1; accounts and
the API token are made with its CLI; three simulated raters log in and rank every pushed prompt
through the app's own HTML forms over HTTP. The loop (``run_iteration`` with ranker kind
``app``) stops after pushing, then resumes without redoing its first three steps.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("vinaforge_collect", reason="apps/collect is not installed (make setup installs it)")
pytest.importorskip("trl")
httpx = pytest.importorskip("httpx")

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "mat-khau-123"
CHEAP = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024", "STATS_REFRESH_S": "0",
         "SECRET_KEY": "test-secret-key"}  # fmt: skip
PROMPTS = [
    "Hãy giới thiệu ngắn gọn về vịnh Hạ Long cho một du khách lần đầu đến Việt Nam.",
    "Làm thế nào để nấu một nồi phở bò ngon tại nhà với nguyên liệu dễ tìm?",
    "Vì sao người Việt thường ăn bánh chưng vào dịp Tết Nguyên Đán?",
    "Bạn có lời khuyên nào cho học sinh chuẩn bị thi tốt nghiệp trung học phổ thông không?",
    "Kể tên ba loại trái cây đặc sản của miền Tây Nam Bộ và mùa thu hoạch của chúng.",
]
RATERS = ("rater1", "rater2", "rater3")
REPLY_RE = re.compile(
    r'<div class="text">([^<]*)</div>\s*<input type="hidden" name="reply" value="(\d+)">', re.S
)
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def collect_app(db_url: str):
    """``vinaforge collect serve`` on a free port (as tests/collect's live server); always stopped."""
    port = _free_port()
    env = {**os.environ, **{f"VINAFORGE_COLLECT_{k}": v for k, v in CHEAP.items()}}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "vinaforge", "collect", "serve", "--db", db_url,
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError("collect app exited: " + log.read().decode(errors="replace")[-2000:])
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("collect app did not start in 120 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _collect_cli(*args: str) -> str:
    from typer.testing import CliRunner

    from vinaforge.cli import app

    env = {
        "VINAFORGE_COLLECT_NEW_PASSWORD": PASSWORD,
        **{f"VINAFORGE_COLLECT_{k}": v for k, v in CHEAP.items()},
    }
    res = CliRunner().invoke(app, ["collect", *args], env=env)
    assert res.exit_code == 0, res.output
    return res.output.strip()


def _teach_vietnamese(src: Path, out: Path) -> Path:
    """The tiny policy after a few steps on Vietnamese text.

    A randomly initialised model writes no Vietnamese, and the app's language check refuses
    what is not Vietnamese; after ~12 steps the policy samples Vietnamese syllable salad,
    which the checks accept (judging quality is the raters' job, not the checks').
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vinaforge.model.tiny import save_model

    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src)
    with open(REPO / "examples" / "corpus" / "vi_docs.jsonl", encoding="utf-8") as fh:
        text = "\n".join(json.loads(line)["text"] for line in fh if line.strip())
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    chunks = ids[: len(ids) // 32 * 32].view(-1, 32)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(12):
        batch = chunks[torch.randint(len(chunks), (8,), generator=gen)]
        model(input_ids=batch, labels=batch).loss.backward()
        opt.step()
        opt.zero_grad()
    return save_model(model.eval(), tok, out)


def _rank_every_parent(base: str, rater: str, parent_ids: list[int], dissent: bool) -> None:
    """Log in and rank each parent through the rank task's form: longest reply first (or the reverse)."""
    with httpx.Client(base_url=base, timeout=30) as web:
        page = web.get("/login")
        r = web.post("/login", data={"csrf": CSRF_RE.search(page.text).group(1), "username": rater,
                                     "password": PASSWORD})  # fmt: skip
        assert r.status_code in (200, 303) and "vf_session" in web.cookies
        for pid in parent_ids:
            page = web.get(f"/tasks/rank?message={pid}")
            assert page.status_code == 200, page.text[-300:]
            shown = [(int(mid), html.unescape(text)) for text, mid in REPLY_RE.findall(page.text)]
            assert len(shown) >= 2
            best_first = sorted(shown, key=lambda m: (-len(m[1]), m[0]))[:: -1 if dissent else 1]
            order = [mid for mid, _ in best_first]
            data = {"csrf": CSRF_RE.search(page.text).group(1), "parent_id": str(pid),
                    "reply": [str(mid) for mid, _ in shown], "rank": [str(order.index(mid) + 1) for mid, _ in shown]}  # fmt: skip
            r = web.post("/tasks/rank", data=data)
            assert r.status_code == 303 or "Đã lưu thứ hạng" in r.text, r.text[-300:]


def _done_marks(work: Path) -> dict[str, tuple[int, float]]:
    marks = {}
    for d in sorted((work / "steps").iterdir()):
        if (d / ".done").is_file():
            marks[d.name] = (
                (d / ".done").stat().st_mtime_ns,
                json.loads((d / ".done").read_text())["finished"],
            )
    return marks


def test_loop_iteration_with_people_ranking_in_a_real_app(tiny_dir, tmp_path, monkeypatch):
    from vinaforge.generate import SamplingConfig
    from vinaforge.loop.app import AppError, fetch_rankings
    from vinaforge.loop.iteration import Config, WaitingForRankings, run_iteration

    policy = _teach_vietnamese(tiny_dir, tmp_path / "policy")
    db_url = f"sqlite:///{tmp_path / 'collect.db'}"
    _collect_cli("user", "add", "quantri", "--role", "admin", "--db", db_url)
    for rater in RATERS:
        _collect_cli("user", "add", rater, "--db", db_url)
    monkeypatch.setenv(
        "VF_TEST_COLLECT_TOKEN", _collect_cli("token", "create", "--user", "quantri", "--db", db_url)
    )
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"messages": [{"role": "user", "content": p}]}, ensure_ascii=False) + "\n"
                               for p in PROMPTS), encoding="utf-8")  # fmt: skip
    work = tmp_path / "iteration"

    with collect_app(db_url) as base:
        cfg = Config(
            policy=str(policy), prompts=[str(prompts)], samples=4,
            sampling=SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=24, seed=0),
            ranker={"kind": "app", "app_url": base, "app_token_env": "VF_TEST_COLLECT_TOKEN"},
            reward={"training": {"max_steps": 3, "batch_size": 4}},
            rl={"training": {"max_steps": 2, "batch_size": 4}, "num_generations": 2, "max_completion_length": 8,
                "eval_max_new_tokens": 8},
        )  # fmt: skip
        with pytest.raises(WaitingForRankings, match="rankings"):
            run_iteration(cfg, work)
        first = _done_marks(work)
        assert list(first) == ["1-prompts", "2-sample", "3-rank"]
        pushed = json.loads((work / "steps" / "3-rank" / "pushed.json").read_text())
        counts = pushed["counts"]
        assert counts["items"] == len(PROMPTS) and counts["items_refused"] == 0
        assert (
            counts["replies_in"]
            == counts["replies_stored"] + counts["replies_existing"] + counts["replies_rejected"]
        )
        parents = [it["parent_id"] for it in pushed["items"] if len(it["reply_ids"]) >= 2]
        assert len(parents) >= 4, pushed  # Vietnamese samples pass the app's checks

        with pytest.raises(AppError, match="refused the API token"):  # a clear error, not a traceback
            fetch_rankings(base, "vfc_not-a-token", pushed, 3)

        # still waiting while fewer than 3 people ranked
        _rank_every_parent(base, "rater1", parents, dissent=False)
        with pytest.raises(WaitingForRankings):
            run_iteration(cfg, work)
        _rank_every_parent(base, "rater2", parents, dissent=False)
        _rank_every_parent(base, "rater3", parents, dissent=True)
        figures = run_iteration(cfg, work)

    after = _done_marks(work)
    assert {k: after[k] for k in first} == first  # prompts, sample and rank were not redone
    assert list(after) == ["1-prompts", "2-sample", "3-rank", "4-rankings", "5-reward", "6-rl"]
    lists = [
        json.loads(x) for x in (work / "steps" / "4-rankings" / "rankings.jsonl").read_text().splitlines()
    ]
    assert sorted(r["parent_id"] for r in lists) == sorted(parents)
    assert figures["rankings"]["ranked_lists"] == len(parents)
    for r in lists:  # the consensus follows the two raters who put the longest reply first
        assert r["ranked_by"] == "people" and r["n_rankings"] == 3 and r["ranks"] == sorted(r["ranks"])
        assert [len(x) for x in r["replies"]] == sorted((len(x) for x in r["replies"]), reverse=True)
        assert r["prompt"][-1]["content"] in PROMPTS
    assert figures["reward"]["pairs"] >= len(parents)
    rl = figures["rl"]
    assert all(isinstance(rl[k], float) for k in ("reward_before", "reward_after", "final_kl"))
    assert (work / "steps" / "6-rl" / "final" / "config.json").is_file()
    assert (work / "steps" / "5-reward" / "final" / "config.json").is_file()
