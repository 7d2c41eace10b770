"""The OpenAI-compatible judge path and the judging protocol, against a real HTTP server on 127.0.0.1.

The server (``http.server`` on an ephemeral loopback port) speaks ``/v1/chat/completions`` and
is called by the official ``openai`` client inside :mod:`vinaforge.generate`; each test gives it
a policy: answer with a verdict, stall past the client's timeout, fail with 5xx/4xx, or judge by
content. Protocol tests (position swap, consistency, resume) run through it because a judge
whose verdicts we control is the only way to check that bookkeeping exactly.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vinaforge.eval.judge.answers import AnswersError, load_answers
from vinaforge.eval.judge.backends import BackendConfigError, complete, make_backend
from vinaforge.eval.judge.judging import JUDGMENTS_FILE, JudgingError, run_judging
from vinaforge.eval.judge.prompts import answer_prompt
from vinaforge.eval.judge.questions import Question
from vinaforge.eval.judge.report import report_section, write_ratings
from vinaforge.eval.judge.store import append_jsonl, read_jsonl
from vinaforge.generate import SamplingParams
from vinaforge.generate.endpoint import EndpointBackend, EndpointConfigError

Policy = Callable[[dict, int], tuple[int, dict | str, dict]]
"""(request body, call number) -> (HTTP status, JSON body or text, headers)."""


def chat_reply(text: str) -> dict:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


class FakeServer:
    """A ThreadingHTTPServer on an ephemeral loopback port driven by a policy function."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.calls = 0
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.calls += 1
                    n = server.calls
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path != "/v1/chat/completions":
                    status, payload, headers = 404, "not found", {}
                else:
                    status, payload, headers = server.policy(body, n)
                data = payload if isinstance(payload, str) else json.dumps(payload)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data.encode())))
                    self.end_headers()
                    self.wfile.write(data.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Policy], FakeServer]]:
    servers: list[FakeServer] = []

    def start(policy: Policy) -> FakeServer:
        servers.append(FakeServer(policy))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


KEY_ENV = "VINAFORGE_TEST_JUDGE_KEY"


@pytest.fixture(autouse=True)
def judge_key(monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sekret")


def fast_backend(url: str, **kw) -> EndpointBackend:
    kw.setdefault("timeout", 2.0)
    kw.setdefault("max_retries", 2)
    kw.setdefault("backoff", 0.01)
    return EndpointBackend(url, "judge-model", api_key_env=KEY_ENV, **kw)


def ask(backend: EndpointBackend, question: str = "?"):
    [c] = complete(backend, [answer_prompt(question)], SamplingParams(max_new_tokens=64))
    return c


def section(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def content_judge(body: dict, n: int) -> tuple[int, dict, dict]:
    """A judge that prefers the answer containing 'đúng' and ties when both or neither do."""
    user = body["messages"][-1]["content"]
    a = "đúng" in section(user, "[Bắt đầu câu trả lời của trợ lý A]", "[Kết thúc câu trả lời của trợ lý A]")
    b = "đúng" in section(user, "[Bắt đầu câu trả lời của trợ lý B]", "[Kết thúc câu trả lời của trợ lý B]")
    verdict = "[[A]]" if a and not b else "[[B]]" if b and not a else "[[C]]"
    return 200, chat_reply(f'Nhận xét ngắn. Định dạng: "[[A]]" hoặc "[[B]]". Phán quyết: {verdict}'), {}


QUESTIONS = [
    Question(id=f"q{i}", category="math" if i % 2 else "writing", question=f"Câu hỏi số {i}?")
    for i in range(6)
]
ANSWERS = {
    "good": {q.id: f"Câu trả lời đúng cho {q.id}." for q in QUESTIONS},
    "mid": {
        q.id: (f"Câu trả lời đúng, ngắn cho {q.id}." if i < 3 else "Không biết.")
        for i, q in enumerate(QUESTIONS)
    },
    "bad": {q.id: "Tôi không chắc." for q in QUESTIONS},
}


# ----------------------------------------------------------------------------- backend


def test_endpoint_returns_text_and_sends_openai_request(serve) -> None:
    srv = serve(lambda body, n: (200, chat_reply("Xin chào! [[A]]"), {}))
    backend = fast_backend(srv.url)
    c = ask(backend, "Bạn khoẻ không?")
    assert c.ok and c.text == "Xin chào! [[A]]" and c.attempts == 1 and c.completion_tokens == 5
    req = srv.requests[0]
    assert req["model"] == "judge-model" and req["max_tokens"] == 64 and req["temperature"] == 0.0
    assert req["messages"] == [{"role": "user", "content": "Bạn khoẻ không?"}]
    assert srv.headers[0]["authorization"] == "Bearer sekret"
    assert "sekret" not in json.dumps(backend.describe())  # the key never lands in result files
    assert backend.usage.requests == 1 and backend.usage.completion_tokens == 5


def test_endpoint_retries_5xx_then_succeeds(serve) -> None:
    srv = serve(lambda body, n: (503, "overloaded", {}) if n <= 2 else (200, chat_reply("ok [[B]]"), {}))
    c = ask(fast_backend(srv.url, max_retries=3))
    assert c.ok and c.text == "ok [[B]]" and c.attempts == 3 and srv.calls == 3


def test_endpoint_honours_retry_after(serve) -> None:
    srv = serve(
        lambda body, n: (429, "slow down", {"Retry-After": "0.4"}) if n == 1 else (200, chat_reply("x"), {})
    )
    t0 = time.perf_counter()
    c = ask(fast_backend(srv.url))
    assert c.ok and c.attempts == 2
    assert time.perf_counter() - t0 >= 0.4  # waited as told, not the 0.01 s backoff


def test_endpoint_timeout_is_retried_then_recorded_as_failure(serve) -> None:
    def stall(body, n):
        time.sleep(0.6)
        return 200, chat_reply("too late"), {}

    srv = serve(stall)
    c = ask(fast_backend(srv.url, timeout=0.2, max_retries=1))
    assert not c.ok and c.text is None and c.finish_reason == "error"
    assert "Timeout" in c.error and c.attempts == 2


def test_endpoint_client_error_is_not_retried(serve) -> None:
    srv = serve(lambda body, n: (400, '{"error": {"message": "bad request"}}', {}))
    c = ask(fast_backend(srv.url))
    assert not c.ok and "400" in c.error and c.attempts == 1 and srv.calls == 1


def test_endpoint_refused_key_stops_the_run(serve, tmp_path: Path) -> None:
    srv = serve(lambda body, n: (401, '{"error": {"message": "bad key"}}', {}))
    with pytest.raises(EndpointConfigError, match=f"refused the API key \\(from {KEY_ENV}\\)"):
        run_judging(QUESTIONS[:1], ANSWERS, fast_backend(srv.url, concurrency=1), tmp_path, progress=False)
    assert srv.calls <= 2  # of the 6 calls planned: the run stops instead of hammering a refusing server
    assert not (tmp_path / JUDGMENTS_FILE).exists()  # nothing was judged


def test_endpoint_short_response_is_a_recorded_failure(serve) -> None:
    srv = serve(lambda body, n: (200, {"id": "x", "object": "chat.completion", "choices": []}, {}))
    c = ask(fast_backend(srv.url, max_retries=1))
    assert not c.ok and "fewer choices" in c.error


def test_connection_refused_is_a_recorded_failure() -> None:
    c = ask(fast_backend("http://127.0.0.1:9/v1", max_retries=1))  # discard port: nothing listens
    assert not c.ok and "APIConnectionError" in c.error and c.attempts == 2


def test_make_backend_reads_base_url_and_key_from_environment(serve, monkeypatch) -> None:
    srv = serve(lambda body, n: (200, chat_reply("ok"), {}))
    monkeypatch.setenv("VINAFORGE_JUDGE_BASE_URL", srv.url)
    monkeypatch.setenv("VINAFORGE_JUDGE_API_KEY", "k-123")
    backend = make_backend("openai:gpt-x", "judge")
    desc = backend.describe()
    assert desc["base_url"] == srv.url and desc["model"] == "gpt-x"
    assert desc["api_key_env"] == "VINAFORGE_JUDGE_API_KEY" and "k-123" not in json.dumps(desc)
    assert ask(backend).ok
    assert srv.headers[0]["authorization"] == "Bearer k-123"


def test_make_backend_without_base_url_names_the_variable(monkeypatch) -> None:
    for var in ("VINAFORGE_JUDGE_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(BackendConfigError, match="VINAFORGE_JUDGE_BASE_URL"):
        make_backend("openai:gpt-x", "judge")
    with pytest.raises(BackendConfigError, match="no model name"):
        make_backend("openai:", "judge", base_url="http://127.0.0.1:1/v1")


# ----------------------------------------------------------------------------- protocol


def test_position_swap_recovers_true_order_with_a_content_judge(serve, tmp_path: Path) -> None:
    srv = serve(content_judge)
    counts = run_judging(QUESTIONS, ANSWERS, fast_backend(srv.url, concurrency=3), tmp_path, progress=False)
    # 3 pairs x 6 questions x 2 orders
    assert counts == {"calls": 36, "done_before": 0, "ok": 36, "unparseable": 0, "failed": 0}
    ratings = write_ratings(tmp_path, settings=None)
    assert ratings["models"] == ["good", "mid", "bad"]
    assert ratings["bt"]["good"] > ratings["bt"]["mid"] > ratings["bt"]["bad"]
    assert ratings["counts"]["consistency"] == 1.0 and ratings["counts"]["games_inconsistent"] == 0
    # good vs mid: mid is also "đúng" on q0..q2 (ties), wrong on q3..q5 (good wins)
    assert ratings["pair_counts"]["good"]["mid"] == {"wins": 3, "ties": 3, "losses": 0}
    assert ratings["win_rate"]["good"]["mid"] == 0.75
    assert (tmp_path / "ratings.png").stat().st_size > 1000
    board = (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    assert "| 1 | good |" in board and "| 3 | bad |" in board
    text = report_section(tmp_path, image_prefix="judge/")
    assert "LLM-as-judge leaderboard" in text and "](judge/ratings.png)" in text


def test_a_judge_that_always_picks_the_first_answer_yields_only_ties(serve, tmp_path: Path) -> None:
    srv = serve(lambda body, n: (200, chat_reply("Câu trả lời A tốt hơn. [[A]]"), {}))
    run_judging(QUESTIONS[:2], ANSWERS, fast_backend(srv.url), tmp_path, progress=False)
    ratings = write_ratings(tmp_path)
    c = ratings["counts"]
    assert c["first_position_share"] == 1.0 and c["consistency"] == 0.0
    assert c["games_inconsistent"] == c["games_rated"] == 6
    assert all(t["ties"] == 4 and t["wins"] == 0 for t in ratings["totals"].values())
    assert max(ratings["bt"].values()) - min(ratings["bt"].values()) < 1e-6  # no model is favoured


def test_failures_and_unparseable_verdicts_are_counted_not_rated(serve, tmp_path: Path) -> None:
    def flaky(body, n):
        user = body["messages"][-1]["content"]
        if "Câu hỏi số 0?" in user:
            return 500, "boom", {}
        if "Câu hỏi số 1?" in user:
            return 200, chat_reply("Cả hai đều ổn, tôi không quyết được."), {}
        return content_judge(body, n)

    srv = serve(flaky)
    counts = run_judging(
        QUESTIONS[:3], ANSWERS, fast_backend(srv.url, max_retries=1), tmp_path, progress=False
    )
    assert counts["failed"] == 6 and counts["unparseable"] == 6 and counts["ok"] == 6  # one question each
    recs = read_jsonl(tmp_path / JUDGMENTS_FILE)
    failed = [r for r in recs if r["status"] == "failed"]
    assert all("500" in r["error"] and r["attempts"] == 2 and r["raw"] is None for r in failed)
    unparseable = [r for r in recs if r["status"] == "unparseable"]
    assert all(r["raw"].startswith("Cả hai") and r["verdict"] is None for r in unparseable)
    ratings = write_ratings(tmp_path)
    c = ratings["counts"]
    assert (c["games"], c["games_rated"], c["games_failed"], c["games_unparseable"]) == (9, 3, 3, 3)
    assert sum(t["games"] for t in ratings["totals"].values()) == 2 * c["games_rated"]
    assert any("6 of 9 games are not rated" in n for n in ratings["notes"])


def test_resume_keeps_verdicts_retries_failures_and_redoes_changed_answers(serve, tmp_path: Path) -> None:
    down = {"on": True}

    def sometimes_down(body, n):
        if down["on"] and "Câu hỏi số 1?" in body["messages"][-1]["content"]:
            return 503, "maintenance", {}
        return content_judge(body, n)

    srv = serve(sometimes_down)
    answers = {m: ANSWERS[m] for m in ("good", "bad")}
    first = run_judging(
        QUESTIONS[:3], answers, fast_backend(srv.url, max_retries=0), tmp_path, progress=False
    )
    assert (first["ok"], first["failed"]) == (4, 2)
    calls_before = srv.calls
    # an interrupted append leaves half a line: it is cut off and that call redone
    with open(tmp_path / JUDGMENTS_FILE, "a", encoding="utf-8") as fh:
        fh.write('{"question_id": "q2", "first": "good", "sec')
    down["on"] = False
    second = run_judging(QUESTIONS[:3], answers, fast_backend(srv.url), tmp_path, progress=False)
    assert second == {"calls": 6, "done_before": 4, "ok": 2, "unparseable": 0, "failed": 0}
    assert srv.calls - calls_before == 2  # only the failed calls
    # answers that changed since they were judged are judged again
    changed = {"good": dict(answers["good"], q0="Giờ thì sai rồi."), "bad": answers["bad"]}
    third = run_judging(QUESTIONS[:3], changed, fast_backend(srv.url), tmp_path, progress=False)
    assert third["done_before"] == 4 and third["ok"] == 2
    games = write_ratings(tmp_path)["counts"]
    assert games["games"] == 3 and games["judge_calls"] == 6


def test_resume_with_another_judge_is_refused(serve, tmp_path: Path) -> None:
    srv = serve(content_judge)
    run_judging(QUESTIONS[:1], ANSWERS, fast_backend(srv.url), tmp_path, progress=False)
    other = EndpointBackend(srv.url, "other-judge")
    with pytest.raises(JudgingError, match="other-judge"):
        run_judging(QUESTIONS[:1], ANSWERS, other, tmp_path, progress=False)
    with pytest.raises(JudgingError, match="prompt 'en'"):
        run_judging(QUESTIONS[:1], ANSWERS, fast_backend(srv.url), tmp_path, lang="en", progress=False)


def test_english_judge_prompt_is_used_when_asked(serve, tmp_path: Path) -> None:
    srv = serve(lambda body, n: (200, chat_reply("B is better. [[B]]"), {}))
    run_judging(
        QUESTIONS[:1], {m: ANSWERS[m] for m in ("good", "bad")}, fast_backend(srv.url), tmp_path, lang="en"
    )
    assert "[The Start of Assistant A's Answer]" in srv.requests[0]["messages"][-1]["content"]
    assert srv.requests[0]["messages"][0]["content"].startswith("You are an impartial judge")


def test_missing_answers_are_named(tmp_path: Path) -> None:
    append_jsonl(tmp_path / "x.jsonl", [{"question_id": "q0", "status": "ok", "answer": "a"}])
    append_jsonl(
        tmp_path / "y.jsonl", [{"question_id": "q0", "status": "failed", "answer": None, "error": "boom"}]
    )
    with pytest.raises(AnswersError, match=r"z\.jsonl not found"):
        load_answers(tmp_path, ["x", "z"], QUESTIONS[:1])
    with pytest.raises(
        AnswersError, match=r"y\.jsonl: no answer for 1 of 1 questions \(first: q0\); 1 of them failed"
    ):
        load_answers(tmp_path, ["x", "y"], QUESTIONS[:1])
    answers, skipped = load_answers(tmp_path, ["x", "y"], QUESTIONS[:1], skip_missing=True)
    assert skipped == ["q0"] and answers["x"] == {"q0": "a"}
