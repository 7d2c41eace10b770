"""``synth``: Vietnamese instructions (self-instruct, Evol-Instruct) and textbook-style pretraining text.

**Instructions** (``mode: instructions``). Each prompt shows the model a few of our Vietnamese
seed tasks (``resources/seed_tasks.jsonl``: education, law and administration, health,
agriculture, culture and history, math, programming, daily life) from one domain, optionally
steered by a persona (``resources/personas.txt``) or a topic, and asks for a new task with its
answer (self-instruct, Wang et al. 2023). Evol-Instruct rounds (Xu et al. 2023) rewrite each new
task deeper, more concrete or broader. Candidates then go through: a parse check, the text core's
language ID, MinHash near-duplicate removal against each other and the seeds (the curation
MinHash: :class:`vinaforge.data.dedup.SyllableMinhashSignature`, syllable shingles and LSH
buckets), and a judge score on our Vietnamese rubric (``resources/rubric.md``) through
:mod:`vinaforge.generate`; each failure is kept in ``rejected.jsonl`` with its reason.

**Textbook text** (``mode: textbook``, as VinaLLaMA did). Curated documents are rewritten through
templates (a textbook section, Q&A pairs, a teacher–student dialogue); every output keeps
``source_id`` and ``template``. This part runs as datatrove steps (sharded, resumable), and the
outputs then go through the curation filters (:func:`vinaforge.data.curate.curate`).

Both report diversity: distinct syllable n-grams and, given a local sentence-transformers model
folder, the embedding spread (mean pairwise cosine distance). All calls go through the call
cache, so a re-run pays for nothing twice. Hand-written: the prompting loop, the parsing and the
report; generation, MinHash, curation and embeddings are library code.
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from pydantic import BaseModel, ConfigDict, Field, field_validator

from vinaforge.factory.pipeline import (
    FactoryError,
    RecordReader,
    ScaleConfig,
    batched,
    prepare_output,
    run_steps,
)
from vinaforge.generate import BackendConfig, SamplingConfig
from vinaforge.io import atomic_write_json, iter_jsonl
from vinaforge.stage import StageContext, StageResult

RESUMABLE = True
DOMAINS = (
    "education",
    "law",
    "health",
    "agriculture",
    "culture_history",
    "math",
    "programming",
    "daily_life",
)
DOMAIN_NAMES = {
    "education": "giáo dục", "law": "pháp luật và thủ tục hành chính", "health": "sức khỏe",
    "agriculture": "nông nghiệp", "culture_history": "văn hóa và lịch sử", "math": "toán học",
    "programming": "lập trình", "daily_life": "đời sống hằng ngày",
}  # fmt: skip
EVOLVE_OPS = ("deepen", "concretize", "breadth")
_TASK_RE = re.compile(r"Nhiệm vụ\s*:\s*(?P<task>.+?)\s*Trả lời\s*:\s*(?P<answer>.+)", re.S | re.I)
_SCORE_RE = re.compile(r"Điểm\s*:?\s*([1-5])|\b([1-5])\s*/\s*5\b")


class JudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    backend: BackendConfig | None = Field(None, description="default: the generating backend")
    template: str = "judge"
    min_score: int = Field(3, ge=1, le=5)


class InstructionsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(16, ge=1, description="self-instruct prompts (each may yield one candidate)")
    domains: list[str] = Field(default_factory=lambda: list(DOMAINS))
    seeds: str | None = Field(None, description="JSONL of {domain, instruction, response}; default: ours")
    examples_per_prompt: int = Field(3, ge=1)
    evolve_rounds: int = Field(1, ge=0, description="Evol-Instruct rounds over each new task")
    evolve_ops: list[Literal["deepen", "concretize", "breadth"]] = Field(
        default_factory=lambda: list(EVOLVE_OPS)
    )
    personas: bool = Field(True, description="steer each prompt with one of our personas")
    topics: list[str] = Field(default_factory=list, description="topics to steer prompts with, in turn")
    min_chars: int = Field(10, ge=1)

    @field_validator("domains")
    @classmethod
    def _known_domains(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d not in DOMAINS]
        if bad:
            raise ValueError(f"unknown domain(s) {bad}; known: {', '.join(DOMAINS)}")
        return v


class TextbookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[str] = Field(default_factory=list, description="curated documents (JSONL with text, id)")
    text_field: str = "text"
    templates: list[str] = Field(
        default_factory=lambda: ["textbook_section", "textbook_qa", "textbook_dialogue"]
    )
    max_docs: int = Field(0, ge=0, description="rewrite at most this many documents (0: all)")
    max_doc_chars: int = Field(3000, ge=100)
    curate: bool = Field(True, description="run the outputs through the curation filters")


class Config(ScaleConfig):
    """Settings of ``vinaforge data synth`` and the ``synth`` recipe stage."""

    mode: Literal["instructions", "textbook"] = "instructions"
    backend: BackendConfig
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(max_new_tokens=384, temperature=0.8)
    )
    instructions: InstructionsConfig = Field(default_factory=InstructionsConfig)
    textbook: TextbookConfig = Field(default_factory=TextbookConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    dedup_threshold: float = Field(
        0.7, gt=0, le=1, description="estimated Jaccard above which a candidate is a duplicate"
    )
    embedding_model: str | None = Field(
        None, description="local sentence-transformers folder for embedding spread"
    )
    cache: str | None = Field(None, description="call cache file (default: OUTPUT/cache.sqlite)")
    seed: int = 0
    batch_records: int = Field(16, ge=1)

    @field_validator("embedding_model")
    @classmethod
    def _local_folder(cls, v: str | None) -> str | None:
        if v and not Path(v).is_dir():
            raise ValueError(f"embedding_model {v} is not a local folder (nothing is downloaded)")
        return v


# ----------------------------------------------------------------------------- parsing and scoring


def parse_task(text: str | None) -> tuple[str, str] | None:
    m = _TASK_RE.search(text or "")
    if not m:
        return None
    task, answer = m.group("task").strip(), m.group("answer").strip()
    return (task, answer) if task and answer else None


def parse_score(text: str | None) -> int | None:
    m = _SCORE_RE.search(text or "")
    return int(m.group(1) or m.group(2)) if m else None


def load_seeds(path: str | None) -> list[dict[str, Any]]:
    from vinaforge.factory.prompts import seed_tasks

    if path is None:
        return list(seed_tasks())
    p = Path(path)
    if not p.is_file():
        raise FactoryError(f"seed file {p} does not exist (instructions.seeds)")
    seeds = []
    for i, rec in iter_jsonl(p, FactoryError, strict_utf8=True):
        for key in ("domain", "instruction", "response"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                raise FactoryError(f"{p}:{i}: seed task needs text field {key!r}")
        seeds.append(rec)
    if not seeds:
        raise FactoryError(f"{p}: empty dataset (no seed tasks)")
    return seeds


# ----------------------------------------------------------------------------- dedup and diversity


def minhash_duplicates(texts: list[str], n_protected: int, threshold: float, seed: int = 1) -> set[int]:
    """Indices (>= ``n_protected``) of texts near-duplicating an earlier text (the curation MinHash).

    The first ``n_protected`` texts (the seeds) are never dropped but do make later copies duplicates.
    """
    import tempfile

    from vinaforge.data.config import MinhashConfig
    from vinaforge.data.dedup import SyllableMinhashSignature, datatrove_minhash_config

    cfg = datatrove_minhash_config(MinhashConfig(n_grams=3, num_buckets=14, hashes_per_bucket=8, seed=seed))
    with tempfile.TemporaryDirectory() as tmp:
        sig = SyllableMinhashSignature(tmp, cfg)
        sigs = []
        for t in texts:
            sh = sig.get_shingles(t)
            sigs.append(sig.get_signature(sh) if len(sh) else None)
    buckets: dict[tuple, list[int]] = {}
    dups: set[int] = set()
    for i, s in enumerate(sigs):
        if s is None:
            continue
        candidates = set()
        for b, band in enumerate(s):
            key = (b, *band)
            candidates.update(buckets.get(key, ()))
            buckets.setdefault(key, []).append(i)
        flat_i = [h for band in s for h in band]
        for j in candidates:
            if j in dups or j == i:
                continue
            flat_j = [h for band in sigs[j] for h in band]
            est = sum(a == b for a, b in zip(flat_i, flat_j, strict=True)) / len(flat_i)
            if est >= threshold and i >= n_protected:
                dups.add(i)
                break
    return dups


def distinct_ngrams(texts: list[str], ns: tuple[int, ...] = (1, 2, 3)) -> dict[str, float]:
    """distinct-n: unique syllable n-grams / all n-grams, over the whole set (Li et al. 2016)."""
    from vinaforge.text.syllables import iter_syllables

    out = {}
    toks = [[s.lower() for s in iter_syllables(t)] for t in texts]
    for n in ns:
        grams = [tuple(t[i : i + n]) for t in toks for i in range(len(t) - n + 1)]
        out[f"distinct_{n}"] = round(len(set(grams)) / len(grams), 4) if grams else 0.0
    return out


@functools.cache
def _embedder(model_dir: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_dir, device="cpu")


def embedding_spread(texts: list[str], model_dir: str) -> float | None:
    """Mean pairwise cosine distance of sentence embeddings (higher: more diverse)."""
    if len(texts) < 2:
        return None
    emb = _embedder(model_dir).encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    sim = emb @ emb.T
    n = len(texts)
    return round(float(1 - (sim.sum() - n) / (n * (n - 1))), 4)


def diversity(texts: list[str], embedding_model: str | None, embed: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {"texts": len(texts), **distinct_ngrams(texts)}
    if embedding_model and embed:
        d["embedding_spread"] = embedding_spread(texts, embedding_model)
    return d


# ----------------------------------------------------------------------------- instructions


def _caller(
    cfg: Config, out: Path, backend: BackendConfig | None = None, sampling: SamplingConfig | None = None
):
    from vinaforge.factory.calls import Caller

    return Caller(backend or cfg.backend, sampling or cfg.sampling, cfg.cache or str(out / "cache.sqlite"))


def _self_instruct_prompts(cfg: Config, seeds: list[dict], template: str) -> list[dict[str, Any]]:
    from vinaforge.factory.prompts import fill, personas

    ic = cfg.instructions
    rng = random.Random(cfg.seed)
    people = personas()
    out = []
    for i in range(ic.n):
        domain = ic.domains[i % len(ic.domains)]
        pool = [s for s in seeds if s["domain"] == domain] or seeds
        shots = rng.sample(pool, min(ic.examples_per_prompt, len(pool)))
        persona = rng.choice(people) if ic.personas else None
        topic = ic.topics[i % len(ic.topics)] if ic.topics else None
        examples = "\n".join(f"- Nhiệm vụ: {s['instruction']}\n  Trả lời: {s['response']}" for s in shots)
        prompt = fill(template, domain=DOMAIN_NAMES[domain], examples=examples, text="",
                      persona=f" Người hỏi là {persona}." if persona else "",
                      topic=f" Chủ đề: {topic}." if topic else "")  # fmt: skip
        out.append({"i": i, "domain": domain, "persona": persona, "topic": topic,
                    "seed_ids": [s.get("id") for s in shots], "prompt": prompt})  # fmt: skip
    return out


def _candidate(meta: dict[str, Any], text: str | None, err: str | None, method: str) -> dict[str, Any]:
    base = {k: meta[k] for k in ("domain", "persona", "topic", "seed_ids") if k in meta}
    rec: dict[str, Any] = {"id": f"synth-{meta['i']:05d}-{method}", "method": method, **base}
    if err:
        return {**rec, "_reason": f"call_failed: {err}", "raw": None}
    parsed = parse_task(text)
    if parsed is None:
        return {
            **rec,
            "_reason": "unparseable: no 'Nhiệm vụ: ... Trả lời: ...' in the reply",
            "raw": (text or "")[:500],
        }
    task, answer = parsed
    return {**rec, "messages": [{"role": "user", "content": task}, {"role": "assistant", "content": answer}]}


def synth_instructions(cfg: Config, out: Path) -> dict[str, Any]:
    from vinaforge.factory.prompts import fill, resolve_template, rubric
    from vinaforge.text.langid import identify

    ic = cfg.instructions
    seeds = load_seeds(ic.seeds)
    template = resolve_template("self_instruct", "self_instruct")
    evolve = {op: resolve_template(f"evolve_{op}", f"evolve_{op}") for op in ic.evolve_ops}
    caller = _caller(cfg, out)
    rng = random.Random(cfg.seed + 1)
    try:
        plan = _self_instruct_prompts(cfg, seeds, template)
        answers = caller.complete(template, [p["prompt"] for p in plan], [str(p["i"]) for p in plan])
        cands = [_candidate(p, t, e, "self_instruct") for p, (t, e) in zip(plan, answers, strict=True)]
        frontier = [c for c in cands if "_reason" not in c]
        metas = {c["id"]: p for c, p in zip(cands, plan, strict=True)}
        for r in range(ic.evolve_rounds):
            if not frontier or not ic.evolve_ops:
                break
            ops = [rng.choice(ic.evolve_ops) for _ in frontier]
            prompts = [
                fill(evolve[op], text=c["messages"][0]["content"])
                for op, c in zip(ops, frontier, strict=True)
            ]
            res = []
            for op in dict.fromkeys(ops):
                idx = [k for k, o in enumerate(ops) if o == op]
                got = caller.complete(evolve[op], [prompts[k] for k in idx], [frontier[k]["id"] for k in idx])
                res.extend(zip(idx, got, strict=True))
            new = []
            for k, (text, err) in sorted(res):
                parent = frontier[k]
                c = _candidate(metas[parent["id"]], text, err, f"evol{r + 1}_{ops[k]}")
                c["id"], c["parent"] = f"{parent['id']}-e{r + 1}", parent["id"]
                metas[c["id"]] = metas[parent["id"]]
                new.append(c)
            cands.extend(new)
            frontier = [c for c in new if "_reason" not in c]
        # checks: language, length
        for c in cands:
            if "_reason" in c:
                continue
            body = " ".join(m["content"] for m in c["messages"])
            if (
                len(c["messages"][0]["content"]) < ic.min_chars
                or len(c["messages"][1]["content"]) < ic.min_chars
            ):
                c["_reason"] = f"too_short: task or answer under {ic.min_chars} characters"
                continue
            label, score = identify(body[:2000])
            if label != "vi":
                c["_reason"] = f"language: identified as {label} ({score:.2f}), not vi"
        alive = [c for c in cands if "_reason" not in c]
        texts = [f"{s['instruction']}\n{s['response']}" for s in seeds] + [
            f"{c['messages'][0]['content']}\n{c['messages'][1]['content']}" for c in alive
        ]
        for k in minhash_duplicates(texts, len(seeds), cfg.dedup_threshold, cfg.seed + 1):
            alive[k - len(seeds)]["_reason"] = (
                "near_duplicate: MinHash similarity to a seed or an earlier task"
            )
        alive = [c for c in alive if "_reason" not in c]
        judge_usage: dict[str, int] = {}
        if cfg.judge.enabled and alive:
            jt = resolve_template(cfg.judge.template, "judge.template")
            jcall = _caller(cfg, out, cfg.judge.backend or cfg.backend, SamplingConfig(max_new_tokens=16))
            try:
                prompts = [fill(jt, rubric=rubric(), text=f"Nhiệm vụ: {c['messages'][0]['content']}\n"
                                f"Trả lời: {c['messages'][1]['content']}") for c in alive]  # fmt: skip
                for c, (text, err) in zip(alive, jcall.complete(jt, prompts), strict=True):
                    score = None if err else parse_score(text)
                    c["judge_score"] = score
                    if err:
                        c["_reason"] = f"call_failed: judge: {err}"
                    elif score is None:
                        c["_reason"] = f"judge_unparseable: {(text or '')[:80]!r}"
                    elif score < cfg.judge.min_score:
                        c["_reason"] = f"judge: score {score} < {cfg.judge.min_score}"
            finally:
                judge_usage = jcall.take_usage()
                jcall.close()
        usage = Counter(caller.take_usage())
        usage.update({f"judge_{k}": v for k, v in judge_usage.items()})
    finally:
        caller.close()
    kept = [c for c in cands if "_reason" not in c]
    rejected = [{"source": c["id"], "reason": c["_reason"], "record": {k: v for k, v in c.items() if k != "_reason"}}
                for c in cands if "_reason" in c]  # fmt: skip
    from vinaforge.chat import write_jsonl

    write_jsonl(out / "kept" / "instructions.jsonl", kept)
    write_jsonl(out / "rejected" / "instructions.jsonl", rejected)
    reasons = Counter(r["reason"].split(":")[0] for r in rejected)
    # every reply the model gave (parsed or not): the diversity of what it writes
    all_texts = [
        " ".join(m["content"] for m in c["messages"]) if "messages" in c else c.get("raw") or ""
        for c in cands
    ]
    all_texts = [t for t in all_texts if t.strip()]
    kept_texts = [" ".join(m["content"] for m in c["messages"]) for c in kept]
    return {"input": len(cands), "kept": len(kept), "rejected": len(rejected), "reasons": dict(reasons),
            "usage": dict(usage), "by_method": dict(Counter(c["method"].split("_")[0] for c in cands)),
            "diversity": {"candidates": diversity(all_texts, cfg.embedding_model),
                          "kept": diversity(kept_texts, cfg.embedding_model, embed=False)}}  # fmt: skip


# ----------------------------------------------------------------------------- textbook


class TextbookStep(PipelineStep):
    """Rewrite each document through every template; one output record per (document, template)."""

    name = "vf/textbook"
    type = "📚 - SYNTH"

    def __init__(self, cfg: Config, cache_path: str):
        super().__init__()
        self.cfg, self.cache_path = cfg, cache_path

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from vinaforge.factory.calls import Caller
        from vinaforge.factory.prompts import fill, resolve_template

        tc = self.cfg.textbook
        caller = Caller(self.cfg.backend, self.cfg.sampling, self.cache_path)
        templates = {t: resolve_template(t, "textbook.templates") for t in tc.templates}
        seen = 0
        try:
            for batch in batched(data, self.cfg.batch_records):
                outs: list[Document] = []
                docs = []
                for doc in batch:
                    text = (doc.metadata.get("record") or {}).get(tc.text_field)
                    if doc.metadata.get("rejected"):
                        outs.append(doc)
                    elif not isinstance(text, str) or not text.strip():
                        doc.metadata["rejected"] = f"input: no text field {tc.text_field!r}"
                        outs.append(doc)
                    elif tc.max_docs and seen >= tc.max_docs:
                        continue
                    else:
                        seen += 1
                        docs.append((doc, text[: tc.max_doc_chars]))
                for name, tpl in templates.items():
                    got = caller.complete(tpl, [fill(tpl, text=t) for _, t in docs])
                    for (doc, _), (text, err) in zip(docs, got, strict=True):
                        src_id = str(doc.metadata["record"].get("id", doc.metadata["where"]))
                        rec = {
                            "id": f"{src_id}::{name}",
                            "text": text or "",
                            "source_id": src_id,
                            "template": name,
                        }
                        meta = {"where": doc.metadata["where"], "record": rec}
                        if err:
                            meta["rejected"] = f"call_failed: {err}"
                        elif not (text or "").strip():
                            meta["rejected"] = "empty: the model returned no text"
                        outs.append(Document(text="", id=rec["id"], metadata=meta))
                if outs:
                    outs[0].metadata["usage"] = caller.take_usage()
                yield from outs
        finally:
            caller.close()


def synth_textbook(cfg: Config, out: Path) -> dict[str, Any]:
    from vinaforge.factory.pipeline import has_records

    tc = cfg.textbook
    if not tc.inputs:
        raise FactoryError("textbook.inputs: give the curated documents to rewrite (mode: textbook)")
    if not has_records(tc.inputs, "raw", "conversation"):
        raise FactoryError(f"{', '.join(tc.inputs)}: empty dataset (no records)")
    cache_path = cfg.cache or str(out / "cache.sqlite")
    stats = run_steps(cfg, [RecordReader(tc.inputs, "raw"), TextbookStep(cfg, cache_path)], out, "textbook")
    from vinaforge.factory.pipeline import read_jsonl_folder

    texts = [r["text"] for r in read_jsonl_folder(out / "kept")]
    stats["by_template"] = dict(Counter(r["template"] for r in read_jsonl_folder(out / "kept")))
    stats["diversity"] = {"kept": diversity(texts, cfg.embedding_model)}
    if tc.curate and texts:
        from vinaforge.data.config import Config as CurateConfig
        from vinaforge.data.curate import curate

        cur = curate(CurateConfig(inputs=[str(out / "kept")], workers=1), out / "curated")
        stats["curated"] = {"input": cur["input"], "kept": cur["kept"], "rejected": cur["rejected"]}
    return stats


# ----------------------------------------------------------------------------- entry points


def synth(cfg: Config, output: str | Path, overwrite: bool = False) -> dict[str, Any]:
    from vinaforge.generate.endpoint import resolve_api_key

    out = Path(output)
    for b in (cfg.backend, cfg.judge.backend):
        if b is not None and b.kind == "openai":
            resolve_api_key(b.api_key_env)
    prepare_output(out, cfg.model_dump(mode="json"), overwrite, keep=("cache.sqlite",))
    t0 = time.perf_counter()
    stats = synth_instructions(cfg, out) if cfg.mode == "instructions" else synth_textbook(cfg, out)
    stats["mode"] = cfg.mode
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(out / "summary.json", stats)
    return stats


def report_section(stats: dict[str, Any], cfg: Config) -> str:
    u = stats.get("usage", {})
    what = "instruction candidates" if cfg.mode == "instructions" else "textbook rewrites"
    lines = [
        f"Synthesized **{stats['input']}** {what} with `{cfg.backend.kind}:{cfg.backend.model}`: **{stats['kept']}** "
        f"kept, **{stats['rejected']}** rejected ({stats['seconds']} s; {u.get('calls', 0)} calls, "
        f"{u.get('cache_hits', 0)} cache hits, {u.get('prompt_tokens', 0)} prompt + "
        f"{u.get('completion_tokens', 0)} completion tokens).",
    ]
    if stats.get("reasons"):
        lines += ["", "Rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["reasons"].items()))]
    if "curated" in stats:
        c = stats["curated"]
        lines += ["", f"Curation filters on the rewrites: {c['input']} in, {c['kept']} kept."]
    div = stats.get("diversity", {})
    if div:
        lines += [
            "",
            "Diversity (candidates: every reply the model gave; kept: what passed the checks):",
            "",
            "| set | texts | distinct-1 | distinct-2 | distinct-3 | embedding spread |",
            "|---|---|---|---|---|---|",
        ]
        for name, d in div.items():
            lines.append(f"| {name} | {d['texts']} | {d['distinct_1']} | {d['distinct_2']} | {d['distinct_3']} | "
                         f"{d.get('embedding_spread', '–')} |")  # fmt: skip
    return "\n".join(lines)


def run(config: Config, ctx: StageContext) -> StageResult:
    stats = synth(config, ctx.work_dir)
    report = report_section(stats, config)
    from vinaforge.factory.calls import tiny_model_note

    report += tiny_model_note(config.backend)
    metrics = {
        k: stats[k] for k in ("input", "kept", "rejected", "reasons", "usage", "seconds") if k in stats
    }
    metrics["diversity"] = stats.get("diversity", {})
    return StageResult(outputs={"kept": "kept", "rejected": "rejected", "summary": "summary.json"},
                       metrics=metrics, report=report)  # fmt: skip
