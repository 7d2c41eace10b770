"""The ``serve_smoke`` stage: the demo's last step, proving the final model is servable.

It builds a RAG index of the example documents (and measures recall@k on held-out sentences of
them), starts the real server (uvicorn, a free loopback port) on the final model, sends one
streamed chat request and one RAG request with the official ``openai`` client, stops the server,
and prints the command that serves the model with its page and the index. Its report-card
section holds the time to first token, the two answers, the passages with the citation check,
and recall@k.
"""

from __future__ import annotations

import html
import logging
import time

from pydantic import Field

from vinaforge.io import atomic_write_json
from vinaforge.recipe import InputPath, InputPaths
from vinaforge.stage import StageConfig, StageContext, StageResult

log = logging.getLogger(__name__)


class Config(StageConfig):
    model: InputPath
    docs: InputPaths = Field(..., description="documents for the RAG index")
    question: str = "Xin chào! Hãy giới thiệu về Hà Nội."
    rag_question: str = "Đồng bằng sông Cửu Long được bồi đắp bởi phù sa của sông nào?"
    max_tokens: int = Field(24, ge=1)
    k: int = Field(3, ge=1, le=20)
    recall_queries: int = Field(40, ge=0, description="held-out sentences for recall@k (0: skip)")
    port: int = Field(0, ge=0, le=65535, description="0: a free port")


def _excerpt(text: str | None, n: int = 160) -> str:
    text = " ".join((text or "").split())
    return html.escape(text[:n] + ("…" if len(text) > n else ""))


def _smoke(base_url: str, model: str, cfg: Config) -> dict:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)
    t0 = time.perf_counter()
    first, pieces, usage = None, [], None
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": cfg.question}],
                                            max_tokens=cfg.max_tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True})  # fmt: skip
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta.content:
                first = first if first is not None else time.perf_counter() - t0
                pieces.append(ch.delta.content)
    total = time.perf_counter() - t0
    rag = client.chat.completions.create(model=model, messages=[{"role": "user", "content": cfg.rag_question}],
                                         max_tokens=cfg.max_tokens, temperature=0, extra_body={"rag": {"k": cfg.k}})  # fmt: skip
    extra = (rag.model_extra or {}).get("vinaforge", {})
    client.close()
    return {
        "chat": {"question": cfg.question, "answer": "".join(pieces), "chunks": len(pieces),
                 "first_token_s": round(first or total, 3), "total_s": round(total, 3),
                 "completion_tokens": getattr(usage, "completion_tokens", None)},
        "rag": {"question": cfg.rag_question, "answer": rag.choices[0].message.content,
                "passages": extra.get("passages", []), "citations": (extra.get("citations") or [None])[0]},
    }  # fmt: skip


def run(config: Config, ctx: StageContext) -> StageResult:
    from vinaforge.rag.chunk import load_documents, passages_of
    from vinaforge.rag.evaluate import evaluate
    from vinaforge.rag.index import RagIndex
    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.server import ServerThread, build_app

    work = ctx.work_dir
    docs = [d for path in config.docs for d in load_documents(path)]
    index_dir = RagIndex.build(passages_of(docs)).save(work / "rag_index")
    recall = evaluate(docs, config.recall_queries, (1, 5)) if config.recall_queries else None
    cfg = ServeConfig(model=config.model, served_name="vinaforge", port=config.port, rag_index=str(index_dir),
                      api_key_env="VINAFORGE_SMOKE_NO_KEY", max_batch_size=4)  # fmt: skip
    t0 = time.perf_counter()
    server = ServerThread(build_app(cfg), cfg).start()
    try:
        result = _smoke(server.url + "/v1", cfg.model_id, config)
    finally:
        server.stop(timeout=30)
    result["server_s"] = round(time.perf_counter() - t0, 2)
    if recall:
        result["recall"] = recall.to_dict()
    atomic_write_json(work / "smoke.json", result)
    final_index = ctx.final_dir / "rag_index"
    command = f"vinaforge serve {config.model} --rag-index {final_index}"
    log.info("chat with the model in your browser: %s  → http://127.0.0.1:8000/", command)
    chat, rag = result["chat"], result["rag"]
    check = rag["citations"] or {}
    lines = [
        "The final model served by `vinaforge serve` (uvicorn, loopback) and queried with the official "
        "`openai` client: one streamed chat request and one retrieval-augmented request.",
        "",
        f"- streamed chat: {chat['chunks']} chunks, first token after {chat['first_token_s']} s, "
        f"{chat['completion_tokens']} tokens in {chat['total_s']} s",
        f"- question: {html.escape(chat['question'])}",
        f"- answer: {_excerpt(chat['answer']) or '(empty)'}",
        f"- RAG question: {html.escape(rag['question'])}",
        "- retrieved: " + "; ".join(f"[đoạn {p['k']}] {_excerpt(p['text'], 60)}" for p in rag["passages"]),
        f"- RAG answer: {_excerpt(rag['answer']) or '(empty)'} — citation check: {check.get('flag') or 'ok'}",
    ]
    if recall:
        lines += ["", f"Retrieval recall on {recall.queries} held-out sentences of the RAG documents "
                      "(each sentence removed from its document before indexing):", "", recall.markdown()]  # fmt: skip
    lines += ["", "Chat with it in the browser:", "", f"    {command}", "", "then open http://127.0.0.1:8000/"]
    metrics = {"first_token_s": chat["first_token_s"], "chat_chunks": chat["chunks"],
               "rag_passages": len(rag["passages"]), "rag_citations_ok": bool(check.get("ok"))}  # fmt: skip
    if recall:
        metrics |= {f"recall@{k}": round(v, 4) for k, v in recall.recall.items()}
    return StageResult(outputs={"rag_index": "rag_index", "smoke": "smoke.json"}, metrics=metrics,
                       report="\n".join(lines))  # fmt: skip
