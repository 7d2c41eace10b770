"""Check a GGUF against the Hugging Face folder it came from; export reports success only if all pass.

1. **Tokenization**: llama.cpp's token ids equal the HF tokenizer's on Vietnamese text, including
   text that uses an extended vocabulary's new tokens (how many new-token ids the texts used is
   recorded, so a check that never touched them cannot pass unnoticed).
2. **Generation**: 16 greedy tokens from the GGUF (llama-cpp-python) equal transformers' greedy
   tokens from the same weights. transformers runs in float32 on the weights rounded to the
   GGUF's 16-bit type, so both sides start from identical numbers. Where HF's two best logits
   are tied within that rounding (a random tiny model's are often 1e-4 apart) and the GGUF picks
   the other, the GGUF goes on from HF's choice and the tie is reported.
3. **Metadata**: the GGUF holds the chat template (the inference form) and the HF BOS/EOS ids.

Checks 1–2 need the llama-cpp-python runtime (the ``gguf`` extra); without it they are
recorded as not run, with the command that runs them (``vinaforge export verify``).

Hand-written: the comparison; tokenizing and generating are llama.cpp's and transformers'.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

# Written by the vinaforge authors for this check: everyday Vietnamese, all six tones, đ/ư/ơ.
VERIFY_TEXTS = (
    "Hôm nay trời đẹp quá, chúng tôi đi học ở trường đại học Việt Nam và gặp nhiều người bạn mới.",
    "Thành phố Hồ Chí Minh là trung tâm kinh tế lớn nhất của cả nước.",
    "Người dân ở đồng bằng sông Cửu Long trồng lúa, nuôi cá và làm vườn cây ăn trái.",
    "Bộ Giáo dục và Đào tạo vừa công bố kế hoạch tuyển sinh năm học mới.",
    "Bác sĩ khuyên mọi người nên uống đủ nước, ăn nhiều rau xanh và ngủ đủ giấc.",
    "Xin chào! Bạn có khỏe không? Tôi rất vui được gặp bạn.",
)
INSTALL_HINT = (
    "install the llama.cpp runtime (CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'vinaforge[gguf]', about 11 "
    "minutes to build) and run `vinaforge export verify EXPORT_DIR`"
)


class VerificationError(RuntimeError):
    """The GGUF does not behave like the HF model; the message says which check failed and how."""


def check_metadata(meta: dict, hf: dict, jinja: str) -> dict:
    """Chat template and BOS/EOS ids in the GGUF's metadata."""
    from vinaforge.export.hf import inference_template

    problems = []
    got_template = meta.get("tokenizer.chat_template")
    if got_template != inference_template(jinja):
        problems.append("tokenizer.chat_template is missing or differs from the model's template")
    for key in ("bos", "eos"):
        want, got = hf.get(f"{key}_token_id"), meta.get(f"tokenizer.ggml.{key}_token_id")
        if want is not None and (got is None or int(got) != int(want)):
            problems.append(f"tokenizer.ggml.{key}_token_id is {got}, the HF tokenizer's is {want}")
    return {"ok": not problems, "problems": problems, "chat_template": bool(got_template),
            "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
            "eos_token_id": meta.get("tokenizer.ggml.eos_token_id")}  # fmt: skip


def check_tokenization(llm, tokenizer, texts: list[str], first_new_id: int | None) -> dict:
    checked, mismatches, new_ids, differs = 0, [], 0, 0
    for text in texts:
        hf_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        gg_ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        checked += 1
        if first_new_id is not None:
            new_ids += sum(1 for i in hf_ids if i >= first_new_id)
        differs += hf_ids != gg_ids
        if hf_ids != gg_ids and len(mismatches) < 3:
            at = next((i for i, (a, b) in enumerate(zip(hf_ids, gg_ids, strict=False)) if a != b), min(len(hf_ids), len(gg_ids)))
            mismatches.append({"text": text[:80], "position": at, "hf": hf_ids[at : at + 4], "gguf": gg_ids[at : at + 4]})
    return {"ok": not mismatches, "texts": checked, "texts_differing": differs, "mismatches": mismatches,
            "new_token_ids_used": new_ids,
            "first_new_id": first_new_id}  # fmt: skip


def _hf_greedy(hf_dir: Path, prompt: list[int], n: int, gguf_type: str, eos: int | None) -> tuple[list[int], list]:
    """Greedy tokens and the logits of each step (to tell a tie from a real difference)."""
    import torch

    from vinaforge.model.load import load_causal_lm

    model = load_causal_lm(str(hf_dir), dtype="float32")
    rounding = {"f16": torch.float16, "bf16": torch.bfloat16}.get(gguf_type)
    if rounding is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(rounding).float())
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, num_beams=1,
                             repetition_penalty=1.0, pad_token_id=eos, eos_token_id=eos,
                             output_scores=True, return_dict_in_generate=True)  # fmt: skip
    return out.sequences[0, len(prompt) :].tolist(), [s[0] for s in out.scores]


def _gguf_greedy(llm, prompt: list[int], n: int, eos: int | None) -> list[int]:
    llm.reset()
    out: list[int] = []
    for tok in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        out.append(int(tok))
        if len(out) >= n or tok == eos:
            break
    return out


#: A GGUF token that differs from HF's is a tie, not a defect, when HF's own logits for the two
#: differ by at most this much relative to the top logit: 16-bit weights move logits by ~1e-4
#: (measured: 2e-4 on a random Phi-3, where two logits were 0.6302 and 0.6302).
TIE_TOLERANCE = 1e-3
MAX_TIES = 3


def check_generation(llm, hf_dir: Path, tokenizer, prompt_text: str, n: int, gguf_type: str) -> dict:
    """GGUF greedy tokens against HF's. At a step where they differ because HF's two candidates are
    tied within 16-bit rounding, the GGUF continues from HF's choice (at most ``MAX_TIES`` times)
    and every tie is reported, so a near-tie of a random model is not taken for a broken export
    while any real difference still fails."""
    prompt = tokenizer(prompt_text)["input_ids"]
    eos = tokenizer.eos_token_id
    hf, scores = _hf_greedy(hf_dir, prompt, n, gguf_type, eos)
    gg: list[int] = []
    ties: list[dict] = []
    while True:
        more = _gguf_greedy(llm, prompt + hf[: len(gg)], n - len(gg), eos) if len(gg) < n else []
        rest = hf[len(gg) :]
        k = next((i for i, (a, b) in enumerate(zip(more, rest, strict=False)) if a != b), None)
        if k is None or len(ties) >= MAX_TIES:
            gg += more
            break
        step = len(gg) + k
        logits = scores[step]
        gap = float(logits[hf[step]] - logits[more[k]])
        if gap > TIE_TOLERANCE * max(1.0, abs(float(logits[hf[step]]))):
            gg += more
            break
        ties.append({"step": step, "hf": hf[step], "gguf": more[k], "logit_gap": round(gap, 6)})
        gg += [*more[:k], hf[step]]
    return {"ok": gg == hf, "tokens": n, "hf": hf, "gguf": gg, "ties": ties, "prompt_tokens": len(prompt)}


def verify_gguf(hf_dir: Path, gguf_file: Path, gguf_type: str, meta: dict, hf_info: dict, texts: list[str],
                max_new_tokens: int = 16, first_new_id: int | None = None,
                compare_generation: bool = True) -> dict:  # fmt: skip
    """All checks; ``verified`` is True only when every check ran and passed."""
    from vinaforge.export.llamacpp import runtime_available
    from vinaforge.model.load import load_tokenizer

    report: dict = {"gguf": gguf_file.name, "metadata": check_metadata(meta, hf_info, hf_info["jinja"])}
    if not runtime_available():
        report.update(verified=False, tokenization=None, generation=None,
                      not_run=f"llama-cpp-python is not installed: {INSTALL_HINT}")  # fmt: skip
        return report
    import llama_cpp

    tokenizer = load_tokenizer(str(hf_dir))
    llm = llama_cpp.Llama(model_path=str(gguf_file), n_ctx=512, n_threads=1, n_batch=512, seed=0, verbose=False)
    try:
        report["tokenization"] = check_tokenization(llm, tokenizer, texts, first_new_id)
        if compare_generation:
            report["generation"] = check_generation(llm, hf_dir, tokenizer, texts[0], max_new_tokens, gguf_type)
        else:  # a quantized file's logits differ from the HF model's by design
            report["generation"] = {"ok": True, "note": f"{gguf_type} is quantized: greedy tokens not compared"}
    finally:
        if hasattr(llm, "close"):
            llm.close()
    report["verified"] = all(report[k]["ok"] for k in ("metadata", "tokenization", "generation"))
    return report


def failure_message(report: dict) -> str:
    """One line per failed check."""
    out = []
    if not report["metadata"]["ok"]:
        out += [f"metadata: {p}" for p in report["metadata"]["problems"]]
    tok = report.get("tokenization")
    if tok and not tok["ok"]:
        m = tok["mismatches"][0]
        out.append(f"tokenization: {len(tok['mismatches'])}+ texts differ, e.g. {m['text']!r} at token {m['position']}: "
                   f"HF {m['hf']} vs GGUF {m['gguf']}")  # fmt: skip
    gen = report.get("generation")
    if gen and not gen["ok"]:
        out.append(f"generation: greedy tokens differ: HF {gen['hf']} vs GGUF {gen['gguf']}")
    return "; ".join(out)
