"""The VBD-LLaMA2-Chat retrieval prompt and the check of the citations in an answer.

The prompt is the one on the VBD-LLaMA2-Chat model card: numbered passages ("Đoạn 0: …"), an
instruction to cite the source as "[đoạn k]" and to answer "Thật tiếc, …" when the passages do
not hold the answer. The template is a ``str.format`` string with ``{question}``, ``{passages}``
and ``{refusal}`` and can be replaced.

A cited number that is not one of the passages given to the model is a fabricated source: the
check flags it, and an answer that neither cites nor refuses is flagged as unsupported.

Hand-written: the prompt is a Vietnamese convention; the check is a regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

REFUSAL = "Thật tiếc, câu hỏi của bạn tôi không biết."

DEFAULT_TEMPLATE = (
    "Trả lời câu hỏi dựa vào thông tin lấy từ các đoạn văn sau. Nếu không có thông tin trả lời "
    '"{refusal}" Nếu có câu trả lời, yêu cầu trả ra cả nguồn chứa câu trả lời dạng "[đoạn k]."\n'
    "Câu hỏi: {question}\n{passages}"
)

_CITE = re.compile(r"\[\s*đoạn\s+(\d+(?:\s*[,;]\s*\d+)*)\s*\]", re.IGNORECASE)


def format_passages(passages: Sequence[str]) -> str:
    return "\n".join(f"Đoạn {k}: {' '.join(p.split())}" for k, p in enumerate(passages))


def build_prompt(question: str, passages: Sequence[str], template: str = DEFAULT_TEMPLATE,
                 refusal: str = REFUSAL) -> str:  # fmt: skip
    """The user message for a retrieval-augmented question (passages numbered from 0)."""
    missing = [k for k in ("{question}", "{passages}") if k not in template]
    if missing:
        raise ValueError(f"RAG template lacks {', '.join(missing)}")
    return template.format(question=question.strip(), passages=format_passages(passages), refusal=refusal)


@dataclass
class CitationCheck:
    """What an answer cites: ``invalid`` numbers point at no given passage."""

    cited: list[int] = field(default_factory=list)
    invalid: list[int] = field(default_factory=list)
    refused: bool = False

    @property
    def ok(self) -> bool:
        """Cites only given passages and cites at least one, or refuses."""
        return not self.invalid and (bool(self.cited) or self.refused)

    @property
    def flag(self) -> str | None:
        if self.invalid:
            return f"cites missing passage(s) {', '.join(map(str, self.invalid))}"
        if not self.cited and not self.refused:
            return "no citation"
        return None

    def to_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok, "flag": self.flag}


def check_citations(answer: str, n_passages: int, refusal: str = REFUSAL) -> CitationCheck:
    """Parse "[đoạn k]" (also "[đoạn 1, 2]") and compare with the ``n_passages`` given."""
    from vinaforge.rag.index import canonical

    answer = canonical(answer)  # "[đoạn 1]" typed decomposed (NFD) is still a citation
    cited: list[int] = []
    for m in _CITE.finditer(answer):
        for k in re.split(r"[,;]", m.group(1)):
            if int(k) not in cited:
                cited.append(int(k))
    invalid = [k for k in cited if not 0 <= k < n_passages]
    stem = canonical(refusal).split(",")[0].strip().lower()  # "thật tiếc"
    refused = bool(stem) and stem in answer.lower()
    return CitationCheck(cited, invalid, refused)
