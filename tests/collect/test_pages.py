"""Every task page over HTTP: review queue, follow-up turns, the PII warning round trip, export on the web data."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from vinaforge_collect.models import Message
from vinaforge_collect.seed import load_seed
from vinaforge_collect.web import create_app

from .helpers import csrf_of, make_settings


def login(app, username: str, password: str = "matkhau-demo") -> TestClient:
    client = TestClient(app)
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login", data={"csrf": token, "username": username, "password": password}, follow_redirects=False
    )
    assert r.status_code == 303
    return client


def test_review_flow_pii_warning_and_follow_up(db):
    settings = make_settings(db.url, reviews_needed=1)
    load_seed(db, settings)
    app = create_app(settings, db)
    minh, hoa = login(app, "minh"), login(app, "hoa")

    # PII: first submit is held back with a warning and a redacted text; the second, acknowledged, goes in
    text = "Mình tên Minh, email minh.nguyen@example.com, muốn hỏi cách viết thư xin việc bằng tiếng Việt?"
    token = csrf_of(minh.get("/tasks/prompt").text)
    r = minh.post("/tasks/prompt", data={"csrf": token, "text": text, "action": "send"})
    assert r.status_code == 200 and "thông tin cá nhân" in r.text and "&lt;EMAIL&gt;" in r.text
    assert 'name="pii_ack" value="1"' in r.text
    redacted = re.search(r"<textarea[^>]*>(.*?)</textarea>", r.text, re.S).group(1)
    r = minh.post("/tasks/prompt", data={"csrf": token, "text": redacted.replace("&lt;", "<").replace("&gt;", ">"),
                                         "action": "send", "pii_ack": "1"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and "ok=pending" in r.headers["location"]
    mid = int(re.search(r"/messages/(\d+)", r.headers["location"]).group(1))
    with db.read() as s:
        stored = s.get(Message, mid)
        assert "minh.nguyen@example.com" not in stored.text and stored.review_state == "pending"

    # pending: not public, not reviewable by its author, reviewable by another contributor
    assert TestClient(app).get(f"/messages/{mid}").status_code == 404
    assert minh.get(f"/tasks/review?message={mid}").status_code == 200
    r = minh.post(
        "/tasks/review", data={"csrf": csrf_of(minh.get("/").text), "message_id": mid, "decision": "accept"}
    )
    assert r.status_code == 403
    page = hoa.get("/tasks/review")
    assert page.status_code == 200 and "Duyệt tin nhắn mới" in page.text
    r = hoa.post("/tasks/review", data={"csrf": csrf_of(page.text), "message_id": mid, "decision": "accept"},
                 follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert TestClient(app).get(f"/messages/{mid}").status_code == 200

    # a follow-up user turn under an assistant reply, and the other task pages
    with db.read() as s:
        reply = s.scalar(
            select(Message).where(Message.role == "assistant", Message.author_id != 3).order_by(Message.id)
        )
    page = hoa.get(f"/tasks/prompter_reply?message={reply.id}")
    assert page.status_code == 200 and "Trả lời như người dùng" in page.text
    r = hoa.post("/tasks/reply", data={"csrf": csrf_of(page.text), "parent_id": reply.id, "kind": "prompter_reply",
                                       "text": "Cảm ơn bạn, vậy nếu không có nồi áp suất thì mình nên làm thế nào?",
                                       "action": "send"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    with db.read() as s:
        follow = s.scalar(select(Message).where(Message.parent_id == reply.id))
        assert follow.role == "prompter" and follow.depth == 2 and follow.tree_id == reply.tree_id
    for kind in ("assistant_reply", "rank", "label", "prompt"):
        assert hoa.get(f"/tasks/{kind}").status_code == 200
    assert hoa.get("/me").status_code == 200 and hoa.get("/drafts").status_code == 200
    board = TestClient(app).get("/leaderboard")
    assert board.status_code == 200 and "Cách tính điểm" in board.text


def test_draft_sent_later_is_removed(db):
    settings = make_settings(db.url, reviews_needed=0)
    load_seed(db, settings)
    app = create_app(settings, db)
    tuan = login(app, "tuan")
    text = "Những loại cây cảnh nào dễ chăm sóc khi để trong phòng làm việc ít ánh nắng?"
    token = csrf_of(tuan.get("/tasks/prompt").text)
    r = tuan.post(
        "/tasks/prompt", data={"csrf": token, "text": text, "action": "draft"}, follow_redirects=False
    )
    draft_url = r.headers["location"].split("?")[0]
    page = tuan.get(draft_url)
    assert page.status_code == 200 and text in page.text
    r = tuan.post("/tasks/prompt", data={"csrf": csrf_of(page.text), "text": text, "action": "send",
                                         "draft_id": draft_url.rsplit("/", 1)[1]}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and "/messages/" in r.headers["location"]
    assert tuan.get(draft_url).status_code == 404
