"""Translation through a real HTTP server (official openai client) and the real tiny model.

The server's "model" is a translation memory (see conftest): real Vietnamese, so the checks can
pass; the tiny model's gibberish must be rejected with reasons. Calls are counted on the server:
a re-run, a resumed run after ``kill -9`` and a run after failures repeat no answered call.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import RECORDS, TranslationMemory

from vinaforge.factory.pipeline import FactoryError, read_jsonl_folder
from vinaforge.factory.translate import Config, translate
from vinaforge.generate import BackendConfig
from vinaforge.generate.endpoint import EndpointConfigError
from vinaforge.generate.testserver import FaultPlan, serve_backend

UNIQUE_UNITS = 17  # distinct prose units in RECORDS (the cache key's source texts)


def _cfg(url: str, inputs, **kw) -> Config:
    backend = {"kind": "openai", "base_url": url, "model": "tm", "timeout": 1.0, **kw.pop("backend", {})}
    return Config(inputs=[str(i) for i in inputs], backend=BackendConfig(**backend), **kw)


def test_translates_every_format_keeping_protected_spans(tm_server, en_data, tmp_path):
    stats = translate(_cfg(tm_server.base_url, [en_data], price_per_1k_prompt=0.5), tmp_path / "out")
    assert stats["input"] == len(RECORDS) == stats["kept"] + stats["rejected"]
    kept = {r["id"]: r for r in read_jsonl_folder(tmp_path / "out" / "kept")}
    assert set(kept) == {"md", "code", "poem", "capital"}
    md = kept["md"]["messages"]
    assert md[0]["content"].startswith(
        "## Hướng dẫn cài đặt\n\n1. Cài đặt bằng lệnh `pip install foo` rồi mở trang https://example.com/docs."
    )
    assert (
        "admin@example.org" in md[0]["content"] and "5 km" in md[0]["content"] and "20%" in md[0]["content"]
    )
    assert (
        md[1]["content"]
        == "| Tên | Giá trị |\n|---|---|\n| Tốc độ | 10 km/h |\n\nXin chào {name}, bạn có %s tin nhắn mới."
    )
    assert "```python\nitems[::-1]\n```" in kept["code"]["messages"][1]["content"]
    assert [m["role"] for m in kept["poem"]["messages"]] == ["system", "user", "assistant"]
    assert kept["capital"]["translation"]["source"][0]["content"] == "What is the capital of Vietnam?"
    rejected = list(read_jsonl_folder(tmp_path / "out" / "rejected"))
    assert [r["reason"].split(":")[0] for r in rejected] == ["language"] and rejected[0]["source"].endswith(
        ":5"
    )
    assert tm_server.successes == stats["usage"]["calls"] == UNIQUE_UNITS
    assert stats["usage"]["prompt_tokens"] > 0 and stats["cost"] > 0
    # a re-run into the same folder (overwrite keeps the cache) makes no call at all
    again = translate(
        _cfg(tm_server.base_url, [en_data], price_per_1k_prompt=0.5), tmp_path / "out", overwrite=True
    )
    assert (
        tm_server.calls == UNIQUE_UNITS
        and again["usage"]["cache_hits"] == UNIQUE_UNITS
        and again["kept"] == 4
    )


def test_back_translation_chrf_check(tm_server, en_data, tmp_path):
    checks = {"back_translation": {"enabled": True, "min_chrf": 60}}
    stats = translate(_cfg(tm_server.base_url, [en_data], checks=checks), tmp_path / "out")
    kept = {r["id"]: r for r in read_jsonl_folder(tmp_path / "out" / "kept")}
    assert set(kept) == {"poem", "capital"} and kept["capital"]["translation"]["back_chrf"] == 100.0
    reasons = {r["record"]["id"]: r["reason"] for r in read_jsonl_folder(tmp_path / "out" / "rejected")}
    assert reasons["md"].startswith("back_translation: chrF++") and reasons["unknown"].startswith("language")
    assert stats["input"] == stats["kept"] + stats["rejected"] == 5


def test_faults_are_retried_and_nothing_is_repeated(en_data, tmp_path):
    faults = FaultPlan(
        {1: "429", 2: "500", 3: "malformed", 5: "timeout"}, retry_after=0.05, timeout_sleep=1.5
    )
    with serve_backend(TranslationMemory(), model_name="tm", faults=faults) as srv:
        stats = translate(_cfg(srv.base_url, [en_data], backend={"concurrency": 4}), tmp_path / "out")
        assert stats["kept"] == 4 and stats["usage"].get("failed_calls", 0) == 0
        assert srv.successes == UNIQUE_UNITS, "each unit answered exactly once"
        assert stats["usage"]["attempts"] == srv.calls == UNIQUE_UNITS + 4


def test_failures_are_recorded_then_only_they_are_retried(en_data, tmp_path):
    faults = FaultPlan({i: "500" for i in range(1, 4)})
    with serve_backend(TranslationMemory(), model_name="tm", faults=faults) as srv:
        cfg = _cfg(srv.base_url, [en_data], backend={"max_retries": 0, "concurrency": 1})
        first = translate(cfg, tmp_path / "out")
        assert first["usage"]["failed_calls"] == 3 and first["reasons"].get("call_failed", 0) >= 1
        assert first["input"] == first["kept"] + first["rejected"]
        assert any(
            "InternalServerError" in r["reason"] for r in read_jsonl_folder(tmp_path / "out" / "rejected")
        )
        second = translate(cfg, tmp_path / "out", overwrite=True)
        assert second["usage"]["calls"] == 3 and second["kept"] == 4
        assert srv.successes == UNIQUE_UNITS


def test_truncated_stream_is_recorded_then_retried(en_data, tmp_path):
    with serve_backend(TranslationMemory(), model_name="tm", faults=FaultPlan({2: "truncate"})) as srv:
        cfg = _cfg(srv.base_url, [en_data], stream=True, backend={"concurrency": 1})
        first = translate(cfg, tmp_path / "out")
        assert first["reasons"].get("call_failed") == 1 and first["usage"]["failed_calls"] == 1
        rows = read_jsonl_folder(tmp_path / "out" / "rejected")
        assert "stream broke" in next(r for r in rows if r["reason"].startswith("call_failed"))["reason"]
        second = translate(cfg, tmp_path / "out", overwrite=True)
        assert second["usage"]["calls"] == 1 and second["kept"] == 4
        assert srv.successes == UNIQUE_UNITS, "the cut stream was the only call made again"


class SlowMemory(TranslationMemory):
    def generate(self, requests, params=None):
        time.sleep(0.15)
        return super().generate(requests, params)


def test_kill_9_then_resume_repeats_no_call(en_data, tmp_path):
    with serve_backend(SlowMemory(), model_name="tm") as srv:
        out = tmp_path / "out"
        cmd = [sys.executable, "-m", "vinaforge", "data", "translate", str(en_data), "-o", str(out), "-m", "tm",
               "--base-url", srv.base_url, "--set", "batch_records=1", "--set", "backend.concurrency=1"]  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            deadline = time.time() + 60
            while srv.successes < 6 and time.time() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert proc.poll() is None, "the run finished before it could be killed"
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=10)
        before = srv.successes
        assert 6 <= before < UNIQUE_UNITS and not (out / "summary.json").exists()
        cfg = Config(inputs=[str(en_data)], batch_records=1,
                     backend=BackendConfig(kind="openai", base_url=srv.base_url, model="tm", concurrency=1))  # fmt: skip
        stats = translate(cfg, out)
        assert stats["kept"] == 4 and stats["usage"]["cache_hits"] >= before - 1
        # every call answered before the kill came from the cache; only the one in flight (its answer
        # sent by the server but never received by the killed client) can be made again
        assert UNIQUE_UNITS <= srv.successes <= UNIQUE_UNITS + 1
        assert stats["usage"]["calls"] + stats["usage"]["cache_hits"] == UNIQUE_UNITS


def test_tiny_model_output_is_rejected_with_reasons(tiny_dir, en_data, tmp_path):
    cfg = Config(inputs=[str(en_data)], backend=BackendConfig(model=str(tiny_dir)),
                 sampling={"max_new_tokens": 8}, limit=2)  # fmt: skip
    stats = translate(cfg, tmp_path / "out")
    assert stats["input"] == 5 and stats["kept"] + stats["rejected"] == 5 and stats["kept"] == 0
    reasons = [r["reason"] for r in read_jsonl_folder(tmp_path / "out" / "rejected")]
    assert sum(r.startswith("limit") for r in reasons) == 3
    assert all(
        r.split(":")[0] in {"protected", "language", "length_ratio", "english_residue", "limit"}
        for r in reasons
    )
    assert stats["usage"]["calls"] > 0 and stats["usage"]["completion_tokens"] > 0


def test_bad_inputs_fail_with_clear_messages(tm_server, en_data, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        _cfg(tm_server.base_url, [en_data], format="xml")
    with pytest.raises(ValueError, match=r"template: prompt template has no \{text\} slot"):
        _cfg(tm_server.base_url, [en_data], template="Translate to Vietnamese please.")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(FactoryError, match="empty.jsonl: empty dataset"):
        translate(_cfg(tm_server.base_url, [empty]), tmp_path / "o1")
    with pytest.raises(FactoryError, match="nope.jsonl: no such file"):
        translate(_cfg(tm_server.base_url, [tmp_path / "nope.jsonl"]), tmp_path / "o2")
    monkeypatch.delenv("VF_FACTORY_KEY", raising=False)
    with pytest.raises(EndpointConfigError, match="VF_FACTORY_KEY .* is not set"):
        translate(
            _cfg(tm_server.base_url, [en_data], backend={"api_key_env": "VF_FACTORY_KEY"}), tmp_path / "o3"
        )
    with serve_backend(TranslationMemory(), api_key="sk-right-key-123456") as srv:
        monkeypatch.setenv("VF_FACTORY_KEY", "sk-wrong-key-000000")
        with pytest.raises(EndpointConfigError, match="refused the API key .*VF_FACTORY_KEY"):
            translate(
                _cfg(srv.base_url, [en_data], backend={"api_key_env": "VF_FACTORY_KEY"}), tmp_path / "o4"
            )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"foo": 1}) + "\n" + json.dumps(RECORDS[3]) + "\n")
    stats = translate(_cfg(tm_server.base_url, [bad]), tmp_path / "o5")
    assert stats["kept"] == 1 and stats["reasons"] == {"input": 1}
    row = next(read_jsonl_folder(tmp_path / "o5" / "rejected"))
    assert row["source"].endswith("bad.jsonl:1") and "unknown format" in row["reason"]


def test_broken_bytes_and_output_paths(tm_server, en_data, tmp_path):
    """Issue 22: invalid UTF-8 past the first 8 KB rejects that line only (the rest is read and
    counted); an output under a file, and --overwrite of a folder that is not a factory run, are refused."""
    from vinaforge.checks import InputCheckError

    good = en_data.read_bytes().splitlines(keepends=True)
    filler = [json.dumps({"id": f"f{i}", "text": "The capital of France is Paris. " * 4}).encode() + b"\n" for i in range(60)]
    data = b"".join(filler) + b'{"id": "bad", "text": "caf\xff"}\n' + b"".join(good)
    assert len(data) > 8192
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(data)
    stats = translate(_cfg(tm_server.base_url, [mixed]), tmp_path / "o1")
    assert stats["input"] == len(filler) + 1 + len(good) == stats["kept"] + stats["rejected"]
    rejected = [json.dumps(r, ensure_ascii=False) for r in read_jsonl_folder(tmp_path / "o1" / "rejected")]
    assert any(f"mixed.jsonl:{len(filler) + 1}" in r and "UTF-8" in r for r in rejected)
    (tmp_path / "afile").write_text("x")
    with pytest.raises((FactoryError, InputCheckError), match="afile"):
        translate(_cfg(tm_server.base_url, [en_data]), tmp_path / "afile" / "out")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FactoryError, match="not a factory run"):
        translate(_cfg(tm_server.base_url, [en_data]), mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_cli_refused_key_and_refused_url_are_one_line_errors(en_data, tmp_path):
    """Issue 22: a wrong API key printed datatrove's traceback before the one-line error; a URL that
    refuses connections made ``data synth`` exit 0 with nothing kept."""
    env = {**os.environ, "VF_FACTORY_KEY": "sk-wrong-key-000000"}
    cli = [sys.executable, "-m", "vinaforge", "data"]
    with serve_backend(TranslationMemory(), api_key="sk-right-key-123456") as srv:
        p = subprocess.run([*cli, "translate", str(en_data), "-o", str(tmp_path / "t"), "--model", "tm",
                            "--base-url", srv.base_url, "--api-key-env", "VF_FACTORY_KEY"],
                           capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert "refused the API key (from VF_FACTORY_KEY)" in p.stdout + p.stderr
    assert "sk-wrong-key" not in p.stdout + p.stderr
    p = subprocess.run([*cli, "synth", "-o", str(tmp_path / "s"), "--model", "m", "--base-url",
                        "http://127.0.0.1:9/v1", "--n", "3", "--set", "backend.max_retries=0"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 1 and "Traceback" not in p.stdout + p.stderr
    assert "every call to http://127.0.0.1:9/v1 failed (3 calls" in p.stdout + p.stderr
