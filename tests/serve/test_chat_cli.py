"""``vinaforge chat`` used as a person would: in a pseudo-terminal (pexpect), typing Vietnamese."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")
VINAFORGE = str(Path(sys.executable).with_name("vinaforge"))


def test_terminal_chat_multi_turn_with_commands(server, client, tmp_path):
    env = dict(os.environ, COLUMNS="200", LANG="C.UTF-8", PYTHONIOENCODING="utf-8", TERM="dumb")
    child = pexpect.spawn(VINAFORGE, ["chat", "--url", server.url + "/v1", "--temperature", "0", "--max-tokens", "10"],
                          env=env, encoding="utf-8", timeout=60, dimensions=(40, 200))  # fmt: skip
    try:
        child.expect("vinaforge chat")
        child.expect("Bạn:")
        question = "Xin chào, hôm nay trời Hà Nội thế nào?"
        child.sendline(question)
        child.expect("Trợ lý:")
        child.expect("Bạn:")
        shown = child.before
        expected = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": question}],
                                                  max_tokens=10, temperature=0).choices[0].message.content  # fmt: skip
        assert " ".join(expected.split())[:20] in " ".join(shown.split())  # the streamed answer was printed
        child.sendline("/system Bạn là trợ lý tiếng Việt.")
        child.expect(r"\(system: Bạn là trợ lý tiếng Việt.\)")
        child.sendline("Phở là gì?")
        child.expect("Trợ lý:")
        child.expect("Bạn:")
        child.sendline("Còn bún chả?")
        child.expect("Trợ lý:")
        child.expect("Bạn:")
        saved = tmp_path / "chat.jsonl"
        child.sendline(f"/save {saved}")
        child.expect("đã lưu 4 lượt")
        child.sendline("/reset")
        child.expect("cuộc trò chuyện mới")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    record = json.loads(saved.read_text(encoding="utf-8"))
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert record["messages"][1]["content"] == "Phở là gì?"


def test_ctrl_c_mid_answer_keeps_roles_alternating(local_engine):
    """Issue 22: a stopped answer left the user turn without a reply; now the shown part is the reply."""
    from vinaforge.generate.base import SamplingParams
    from vinaforge.serve.chat_cli import ChatSession

    session = ChatSession(local_engine.backend, SamplingParams(max_new_tokens=12, temperature=0))
    shown: list[str] = []

    def interrupt_after_first_piece(delta: str) -> None:  # the terminal's Ctrl-C arrives while printing
        shown.append(delta)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.ask("Xin chào", interrupt_after_first_piece)
    assert [t["role"] for t in session.turns] == ["user", "assistant"]
    assert session.turns[1]["content"] == "".join(shown)

    session.turns = [{"role": "user", "content": "Xin chào"}]
    session._keep("")  # stopped before anything was shown: the question goes too
    assert session.turns == []
    session.ask("Phở là gì?", shown.append)
    assert [t["role"] for t in session.turns] == ["user", "assistant"]


def test_ctrl_c_at_an_idle_prompt_does_not_quit(server):
    env = dict(os.environ, COLUMNS="200", LANG="C.UTF-8", PYTHONIOENCODING="utf-8", TERM="dumb")
    child = pexpect.spawn(VINAFORGE, ["chat", "--url", server.url + "/v1", "--max-tokens", "4"],
                          env=env, encoding="utf-8", timeout=60, dimensions=(40, 200))  # fmt: skip
    try:
        child.expect("Bạn:")
        child.sendintr()
        child.expect("Ctrl-D để thoát")
        child.expect("Bạn:")
        child.sendline("/exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
