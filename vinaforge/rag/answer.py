"""One retrieval-augmented answer: retrieve, prompt in the VBD format, generate, check citations."""

from __future__ import annotations

from dataclasses import dataclass, field

from vinaforge.generate.base import Backend, SamplingParams
from vinaforge.rag.index import Hit, RagIndex
from vinaforge.rag.prompt import DEFAULT_TEMPLATE, CitationCheck, build_prompt, check_citations


@dataclass
class RagAnswer:
    question: str
    prompt: str
    hits: list[Hit]
    text: str | None = None
    check: CitationCheck | None = None
    error: str | None = None
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.text, "error": self.error,
                "passages": [h.to_dict() for h in self.hits],
                "citations": self.check.to_dict() if self.check else None}  # fmt: skip


def ask(index: RagIndex, question: str, backend: Backend | None = None, k: int = 5,
        params: SamplingParams | None = None, template: str = DEFAULT_TEMPLATE) -> RagAnswer:  # fmt: skip
    """Retrieve ``k`` passages and, with a backend, answer from them (citations checked)."""
    hits = index.search(question, k)
    prompt = build_prompt(question, [h.passage.text for h in hits], template)
    result = RagAnswer(question, prompt, hits)
    if backend is None:
        return result
    c = backend.chat([{"role": "user", "content": prompt}], params or SamplingParams(max_new_tokens=256))
    if not c.ok:
        result.error = c.error
        return result
    result.text = c.text
    result.check = check_citations(c.text or "", len(hits))
    return result
