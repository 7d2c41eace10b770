"""Make docs/img/web-chat.png: the chat page in headless Chromium, a greeting and a RAG answer.

The model is the tiny random test model *taught* (overfitted on) exactly these two answers, so
the screenshot shows what a chat model's output looks like on the page (streamed Markdown, the
"[đoạn k]" citation linked to its passage); it says nothing about model quality.

    .venv/bin/python tests/serve/make_screenshot.py docs/img/web-chat.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))

GREETING = "Xin chào! Tôi là trợ lý tiếng Việt. Tôi có thể giúp gì cho bạn?"
QUESTION = "Đồng bằng sông Cửu Long được bồi đắp bởi gì?"
ANSWER = "Đồng bằng sông Cửu Long được bồi đắp bởi **phù sa của sông Mê Kông** [đoạn 0]."


def main(out: Path) -> None:
    import torch
    from conftest import teach  # the tests' helper
    from playwright.sync_api import sync_playwright
    from test_web import CHROMIUM, FLAGS

    from vinaforge.generate.local import LocalBackend
    from vinaforge.model.tiny import build_tiny_model
    from vinaforge.rag.chunk import load_documents, passages_of
    from vinaforge.rag.index import RagIndex
    from vinaforge.rag.prompt import build_prompt
    from vinaforge.serve.api import create_app
    from vinaforge.serve.config import ServeConfig
    from vinaforge.serve.engines import LocalEngine
    from vinaforge.serve.server import ServerThread
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    tok = resolve_tokenizer("mistral-v0.1")
    model = build_tiny_model("mistral", vocab_size=len(tok), layers=2, hidden=64, heads=4,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, seed=0)  # fmt: skip
    model.save_pretrained(tmp / "tiny")
    tok.save_pretrained(tmp / "tiny")
    passages = passages_of(load_documents(REPO / "examples" / "corpus" / "vi_docs.jsonl"), max_syllables=50)
    index = RagIndex.build(passages)
    hits = index.search(QUESTION, 2)
    rag_prompt = build_prompt(QUESTION, [h.passage.text for h in hits])
    taught = teach(tmp / "tiny", tmp / "taught", [([{"role": "user", "content": "Xin chào"}], GREETING),
                                                  ([{"role": "user", "content": rag_prompt}], ANSWER)], steps=150)  # fmt: skip
    cfg = ServeConfig(model=str(taught), served_name="vinaforge-demo", port=0, rag_k=2,
                      api_key_env="VINAFORGE_TEST_NO_KEY")  # fmt: skip
    with ServerThread(create_app(cfg, LocalEngine(LocalBackend(str(taught))), index), cfg) as s, \
            sync_playwright() as p:  # fmt: skip
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 640}, locale="vi-VN")
        page.goto(s.url + "/")
        page.wait_for_selector("#model:has-text('vinaforge-demo')")
        page.fill("#temperature", "0")
        page.fill("#max-tokens", "64")
        page.fill("#input", "Xin chào")
        page.click("#send")
        page.wait_for_selector(".msg.assistant[data-done='1']", timeout=60_000)
        page.check("#rag")
        page.fill("#input", QUESTION)
        page.click("#send")
        page.wait_for_selector(".msg.assistant[data-done='1'] >> nth=1", timeout=60_000)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "docs" / "img" / "web-chat.png"))
