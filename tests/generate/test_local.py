"""LocalBackend on a real tiny model: batching, streaming, stops, sampling, limits."""

from __future__ import annotations

import pytest

from vinaforge.generate import GenRequest, SamplingParams

PROMPTS = [
    [{"role": "user", "content": "Xin chào, bạn là ai?"}],
    [{"role": "system", "content": "Trả lời ngắn."}, {"role": "user", "content": "Thủ đô của Việt Nam là gì vậy bạn?"}],
    "Hôm nay trời",
    [{"role": "user", "content": "Kể cho tôi nghe một câu chuyện cổ tích Việt Nam thật dài và hay."}],
    "Một",
]
GREEDY = SamplingParams(max_new_tokens=10)


def test_batched_greedy_equals_one_by_one(backend):
    batched = backend.generate(PROMPTS, GREEDY)
    single = [backend.generate([p], GREEDY)[0] for p in PROMPTS]
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.ok and c.completion_tokens > 0 and c.prompt_tokens > 0 for c in batched)
    assert [c.request_index for c in batched] == list(range(len(PROMPTS)))
    assert {c.finish_reason for c in batched} <= {"stop", "length"}


def test_chat_prompt_uses_saved_template(backend):
    text = backend.prompt_of(GenRequest(messages=PROMPTS[1]))
    assert text == "<s>[INST] Trả lời ngắn.\n\nThủ đô của Việt Nam là gì vậy bạn? [/INST]"
    assert backend.describe()["chat_template"] == "mistral"


def test_stream_equals_generate_and_early_close_frees_model(backend):
    full = backend.generate([PROMPTS[0]], GREEDY)[0]
    events = list(backend.stream(PROMPTS[0], GREEDY))
    assert "".join(e.delta for e in events) == full.text
    assert events[-1].completion.text == full.text and events[-1].completion.completion_tokens == full.completion_tokens
    it = backend.stream(PROMPTS[3], SamplingParams(max_new_tokens=200))
    next(it)
    it.close()  # a client that goes away
    assert backend.generate([PROMPTS[0]], GREEDY)[0].text == full.text


def test_stop_strings_cut_the_text(backend):
    full = backend.generate(["Hôm nay trời"], SamplingParams(max_new_tokens=16))[0].text
    assert len(full) > 8
    stop = full[4:8]
    cut = backend.generate(["Hôm nay trời"], SamplingParams(max_new_tokens=16, stop=[stop]))[0]
    assert cut.text == full[: full.find(stop)] and cut.finish_reason == "stop"
    streamed = "".join(e.delta for e in backend.stream(["Hôm nay trời"][0], SamplingParams(max_new_tokens=16, stop=[stop])))
    assert streamed == cut.text


def test_sampling_is_seeded_and_n_samples(backend):
    p = SamplingParams(max_new_tokens=8, temperature=1.0, top_p=0.95, top_k=50, n=3, seed=7)
    a = backend.generate([PROMPTS[0], PROMPTS[2]], p)
    b = backend.generate([PROMPTS[0], PROMPTS[2]], p)
    assert [c.text for c in a] == [c.text for c in b]
    assert [(c.request_index, c.sample_index) for c in a] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert len({c.text for c in a[:3]}) > 1


def test_too_long_prompt_is_an_error_item_not_a_crash(backend):
    long = "trời " * 2000
    out = backend.generate([long, "Xin chào"], GREEDY)
    assert not out[0].ok and "exceeds the model's context" in out[0].error and out[0].finish_reason == "error"
    assert out[1].ok
    (ev,) = list(backend.stream(long, GREEDY))
    assert ev.completion is not None and not ev.completion.ok


def test_bad_params():
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="exactly one"):
        GenRequest()


def test_model_without_template_is_prompted_in_vi_qa(tiny_dir, tmp_path):
    from transformers import AutoTokenizer

    from vinaforge.generate.local import LocalBackend
    from vinaforge.model.load import load_causal_lm

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.chat_template = None
    b = LocalBackend(load_causal_lm(str(tiny_dir)), tok)
    assert b.template_name == "vi_qa"
    assert b.prompt_of(GenRequest(messages=PROMPTS[0])).endswith("### Câu hỏi:\nXin chào, bạn là ai?\n\n### Trả lời:")
    assert "### Câu hỏi:" in b.template_stops


def test_template_without_system_role_gets_it_folded(tiny_dir):
    from transformers import AutoTokenizer

    from vinaforge.generate.local import LocalBackend
    from vinaforge.model.load import load_causal_lm

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    b = LocalBackend(load_causal_lm(str(tiny_dir)), tok)
    text = b.prompt_of(GenRequest(messages=PROMPTS[1]))
    assert text == "user: Trả lời ngắn.\n\nThủ đô của Việt Nam là gì vậy bạn?\nassistant:"


def test_raw_completion_keeps_the_space_before_its_first_word(backend):
    """Issue 22: "ăn" + "▁và" decoded alone gave "và"; after the prompt's last token it is " và"."""
    from vinaforge.generate.base import GenRequest, continuation_context, decode_after

    tok = backend.tokenizer
    prompt_ids = tok("Tôi ăn", add_special_tokens=True)["input_ids"]
    new_ids = tok("Tôi ăn và uống", add_special_tokens=True)["input_ids"][len(prompt_ids) :]
    assert tok.decode(new_ids, skip_special_tokens=True) == "và uống"  # the defect, kept visible
    ctx = continuation_context(GenRequest(prompt="Tôi ăn"), prompt_ids)
    assert decode_after(tok, ctx, new_ids) == " và uống"
    chat = GenRequest(messages=[{"role": "user", "content": "Tôi ăn"}])
    assert decode_after(tok, continuation_context(chat, prompt_ids), new_ids) == "và uống"  # chat replies: no space


def test_completion_tokens_do_not_count_eos(backend):
    from vinaforge.generate.base import SamplingParams

    tok = backend.tokenizer
    word = tok("và", add_special_tokens=False)["input_ids"]
    text, finish, count = backend._finish([*word, tok.eos_token_id], [], SamplingParams(max_new_tokens=8))
    assert (text, finish, count) == ("và", "stop", len(word))
