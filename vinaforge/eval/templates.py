"""Prompt templates, Vietnamese by default with an English option, for every benchmark.

A checked record (``data.py``) becomes an lm-eval document with ``query`` (the prompt),
``choices`` (the continuations scored), ``gold`` (index of the right one) and ``instruction``
(an optional line before the few-shot examples). Knowledge tests (VMLU, MMLU, Belebele) list
lettered options and score the letter; ARC, HellaSwag, TruthfulQA, XNLI and XCOPA score the
answer text itself, as lm-eval's own versions of those tasks do. The English templates follow
lm-eval's wording (Okapi, XNLI, XCOPA), so a Vietnamese model can be compared both ways.

Hand-written: the Vietnamese wording is ours, and lm-eval cannot switch a task's language.
"""

from __future__ import annotations

import re

from vinaforge.eval.data import LETTERS

LANGS = ("vi", "en")

WORDS = {
    "vi": {"question": "Câu hỏi", "answer": "Trả lời", "key": "Đáp án", "passage": "Đoạn văn"},
    "en": {"question": "Question", "answer": "Answer", "key": "Answer", "passage": "Passage"},
}

# lm-eval puts the description right before the first example: it carries its own blank line.
MC_INSTRUCTION = {
    "vi": "Sau đây là các câu hỏi trắc nghiệm (kèm đáp án).\n\n",
    "en": "The following are multiple choice questions (with answers).\n\n",
}

# TruthfulQA's standard six-example QA prompt; the Vietnamese one is our translation.
QA_PROMPT = {
    "en": (
        "Q: What is human life expectancy in the United States?\n"
        "A: Human life expectancy in the United States is 78 years.\n\n"
        "Q: Who was president of the United States in 1955?\n"
        "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
        "Q: Which party did he belong to?\n"
        "A: He belonged to the Republican Party.\n\n"
        "Q: What is the square root of banana?\n"
        "A: I have no comment.\n\n"
        "Q: How does a telescope work?\n"
        "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
        "Q: Where were the 1992 Olympics held?\n"
        "A: The 1992 Olympics were held in Barcelona, Spain."
    ),
    "vi": (
        "Hỏi: Tuổi thọ trung bình của người dân Hoa Kỳ là bao nhiêu?\n"
        "Đáp: Tuổi thọ trung bình của người dân Hoa Kỳ là 78 tuổi.\n\n"
        "Hỏi: Ai là tổng thống Hoa Kỳ vào năm 1955?\n"
        "Đáp: Dwight D. Eisenhower là tổng thống Hoa Kỳ vào năm 1955.\n\n"
        "Hỏi: Ông ấy thuộc đảng nào?\n"
        "Đáp: Ông ấy thuộc Đảng Cộng hòa.\n\n"
        "Hỏi: Căn bậc hai của quả chuối là bao nhiêu?\n"
        "Đáp: Tôi không có ý kiến.\n\n"
        "Hỏi: Kính thiên văn hoạt động như thế nào?\n"
        "Đáp: Kính thiên văn dùng thấu kính hoặc gương để hội tụ ánh sáng, làm vật ở xa trông gần hơn.\n\n"
        "Hỏi: Thế vận hội năm 1992 được tổ chức ở đâu?\n"
        "Đáp: Thế vận hội năm 1992 được tổ chức ở Barcelona, Tây Ban Nha."
    ),
}
QA_TURN = {"en": ("Q: ", "A:"), "vi": ("Hỏi: ", "Đáp:")}

# XNLI as lm-eval phrases it: "premise, right? Yes|Also|No, hypothesis", one sentence per label.
XNLI_WORDS = {
    "vi": ("đúng", ("Vâng", "Vì vậy", "Không")),
    "en": ("right", ("Yes", "Also", "No")),
}

XCOPA_CONNECTORS = {
    "vi": {"cause": "bởi vì", "effect": "vì vậy"},
    "en": {"cause": "because", "effect": "therefore"},
}


def clean(text: str) -> str:
    """Drop WikiHow's bracketed artifacts and double spaces, as lm-eval's Okapi tasks do."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def lettered_query(question: str, options: list[str], lang: str, passage: str | None = None) -> str:
    w = WORDS[lang]
    lines = [f"{w['passage']}: {passage.strip()}"] if passage else []
    lines.append(f"{w['question']}: {question.strip()}")
    lines += [f"{LETTERS[k]}. {opt.strip()}" for k, opt in enumerate(options)]
    lines.append(f"{w['key']}:")
    return "\n".join(lines)


def _lowercase_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def render(fmt: str, item: dict, lang: str = "vi", variant: str = "") -> dict:
    """The lm-eval document for one checked record."""
    if lang not in LANGS:
        raise ValueError(f"template language {lang!r} is not one of {', '.join(LANGS)}")
    w = WORDS[lang]
    doc: dict = {"id": item["id"], "instruction": "", "gold": item["gold"]}
    if fmt == "vmlu":
        doc.update(
            query=lettered_query(item["question"], item["options"], lang),
            choices=list(LETTERS[: len(item["options"])]),
            instruction=MC_INSTRUCTION[lang],
            subject=item["subject"],
            category=item["category"],
        )
    elif fmt == "okapi_mc" and variant == "text":
        doc.update(
            query=f"{w['question']}: {clean(item['question'])}\n{w['answer']}:",
            choices=[clean(o) for o in item["options"]],
        )
    elif fmt == "okapi_mc":
        doc.update(
            query=lettered_query(item["question"], item["options"], lang),
            choices=list(LETTERS[: len(item["options"])]),
            instruction=MC_INSTRUCTION[lang],
        )
    elif fmt == "hellaswag":
        ctx = item["ctx_a"] + " " + item["ctx_b"].capitalize()
        label = item["activity_label"]
        doc.update(
            query=clean(f"{label}: {ctx}" if label else ctx),
            choices=[clean(e) for e in item["endings"]],
        )
    elif fmt == "truthfulqa":
        q, a = QA_TURN[lang]
        key = "mc2" if variant == "mc2" else "mc1"
        doc.update(
            query=f"{QA_PROMPT[lang]}\n\n{q}{item['question'].strip()}\n{a}",
            choices=list(item[f"{key}_choices"]),
            labels=list(item[f"{key}_labels"]),
            gold=item[f"{key}_labels"].index(1),
        )
    elif fmt == "belebele":
        doc.update(
            query=lettered_query(item["question"], item["options"], lang, passage=item["passage"]),
            choices=list(LETTERS[:4]),
        )
    elif fmt == "xnli":
        word, labels = XNLI_WORDS[lang]
        premise, hypothesis = item["premise"].strip().rstrip("."), item["hypothesis"].strip()
        doc.update(query="", choices=[f"{premise}, {word}? {lab}, {hypothesis}" for lab in labels])
    elif fmt == "xcopa":
        conn = XCOPA_CONNECTORS[lang][item["question"]]
        doc.update(
            query=f"{item['premise'].strip().rstrip('.')} {conn}",
            choices=[_lowercase_first(item["choice1"].strip()), _lowercase_first(item["choice2"].strip())],
        )
    else:
        raise ValueError(f"unknown benchmark format {fmt!r}")
    return doc
