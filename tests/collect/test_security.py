"""Security: XSS shown as text, CSRF refused, authorization, SQL fragments harmless, brute force.

Runs the real app (FastAPI + real SQLite file) through Starlette's test client: the HTTP layer is
in-process, everything else (routing, cookies, templates, database) is what a browser gets.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from vinaforge_collect.models import Draft, Message, User
from vinaforge_collect.seed import load_seed
from vinaforge_collect.web import create_app

from .helpers import csrf_of, make_settings

PASSWORD = "mat-khau-123"


@pytest.fixture
def app_and_db(db):
    settings = make_settings(db.url, reviews_needed=0, login_max_failures=5)
    load_seed(db, settings)
    return create_app(settings, db), db


def signup(client: TestClient, username: str) -> None:
    token = csrf_of(client.get("/signup").text)
    r = client.post("/signup", data={"csrf": token, "username": username, "password": PASSWORD, "consent": "yes"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text


def post_prompt(client: TestClient, text: str, **extra):
    token = csrf_of(client.get("/tasks/prompt").text)
    return client.post("/tasks/prompt", data={"csrf": token, "text": text, "action": "send", **extra})


def test_session_cookie_flags_and_security_headers(app_and_db):
    client = TestClient(app_and_db[0])
    token = csrf_of(client.get("/signup").text)
    r = client.post("/signup", data={"csrf": token, "username": "anh", "password": PASSWORD, "consent": "yes"},
                    follow_redirects=False)  # fmt: skip
    cookie = r.headers["set-cookie"].lower()
    assert "vf_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    page = client.get("/")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    with app_and_db[1].read() as s:  # argon2id hash, not the password
        stored = s.scalar(select(User.password_hash).where(User.username == "anh"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_xss_is_shown_as_text(app_and_db):
    client = TestClient(app_and_db[0])
    signup(client, "anh")
    payload = (
        'Vì sao trời mưa lại có cầu vồng <script>alert("xss")</script> <img src=x onerror=alert(1)> nhỉ?'
    )
    r = post_prompt(client, payload)
    assert r.status_code == 200 and "/messages/" in str(r.url)
    assert "<script>alert" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in r.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in r.text


def test_csrf_missing_or_forged_token_is_refused(app_and_db):
    app, db = app_and_db
    client = TestClient(app)
    signup(client, "anh")
    text = "Nên đọc những cuốn sách nào để hiểu thêm về lịch sử Việt Nam thời Lý Trần?"
    for data in ({"text": text}, {"text": text, "csrf": "0" * 64}):
        r = client.post("/tasks/prompt", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    other = TestClient(app)  # a token taken from another visitor's page does not fit this visitor
    foreign = csrf_of(other.get("/signup").text)
    assert client.post("/tasks/prompt", data={"text": text, "csrf": foreign}).status_code == 403
    anon = TestClient(app)
    r = anon.post("/login", data={"username": "minh", "password": "matkhau-demo"})
    assert r.status_code == 403
    with db.read() as s:
        assert s.scalar(select(func.count()).where(Message.text == text)) == 0
    assert post_prompt(client, text).status_code == 200  # with its token it goes through


def test_authorization(app_and_db):
    app, db = app_and_db
    alice, bob, anon = TestClient(app), TestClient(app), TestClient(app)
    signup(alice, "alice")
    signup(bob, "bob")
    assert alice.get("/mod").status_code == 403
    assert anon.get("/mod", follow_redirects=False).status_code == 303  # to the login page
    assert anon.get("/tasks/rank", follow_redirects=False).headers["location"].startswith("/login")
    token = csrf_of(alice.get("/tasks/prompt").text)
    r = alice.post("/tasks/prompt", data={"csrf": token, "text": "Bản nháp bí mật của alice về kế hoạch du lịch", "action": "draft"},
                   follow_redirects=False)  # fmt: skip
    draft_url = r.headers["location"].split("?")[0]
    assert alice.get(draft_url).status_code == 200
    r = bob.get(draft_url)
    assert r.status_code == 404 and "bí mật" not in r.text
    assert "bí mật" not in bob.get("/drafts").text
    with db.read() as s:
        msg_id = s.scalar(select(Message.id).order_by(Message.id))
    for path, data in ((f"/mod/messages/{msg_id}", {"action": "hide"}), ("/mod/users/1", {"role": "admin"})):
        data["csrf"] = csrf_of(bob.get("/").text)
        assert bob.post(path, data=data).status_code == 403
    with db.read() as s:
        assert not s.get(Message, msg_id).hidden
        assert s.scalar(select(User.role).where(User.username == "bob")) == "contributor"
    # a moderator may hide, and a hidden message disappears for everyone else
    mod = TestClient(app)
    token = csrf_of(mod.get("/login").text)
    mod.post("/login", data={"csrf": token, "username": "lan", "password": "matkhau-demo"})
    assert mod.get("/mod").status_code == 200
    r = mod.post(f"/mod/messages/{msg_id}", data={"csrf": csrf_of(mod.get("/mod").text), "action": "hide"})
    assert r.status_code == 200
    assert anon.get(f"/messages/{msg_id}").status_code == 404
    assert mod.get(f"/messages/{msg_id}").status_code == 200


def test_sql_fragment_is_harmless(app_and_db):
    app, db = app_and_db
    client = TestClient(app)
    signup(client, "anh")
    fragment = "Câu hỏi của tôi là gì vậy bạn ơi'); DROP TABLE users; -- và ' OR '1'='1"
    r = post_prompt(client, fragment)
    assert r.status_code == 200
    with db.read() as s:
        assert s.scalar(select(Message.text).where(Message.text == fragment)) == fragment
        assert s.scalar(select(func.count(User.id))) == 7
    fresh = TestClient(app)
    token = csrf_of(fresh.get("/login").text)
    r = fresh.post("/login", data={"csrf": token, "username": "minh' --", "password": "x' OR '1'='1"})
    assert r.status_code == 401 and "vf_session" not in fresh.cookies
    assert client.get("/messages/1%20OR%201=1").status_code in (404, 422)
    assert client.get("/tasks/label?message=1;DROP TABLE users").status_code in (404, 422)


def test_brute_force_locks_the_account(app_and_db):
    app, db = app_and_db
    client = TestClient(app)
    statuses = []
    for _ in range(5):
        token = csrf_of(client.get("/login").text)
        statuses.append(
            client.post(
                "/login", data={"csrf": token, "username": "minh", "password": "sai-mat-khau"}
            ).status_code
        )
    assert statuses == [401] * 5
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"csrf": token, "username": "minh", "password": "matkhau-demo"})
    assert r.status_code == 429 and "vf_session" not in client.cookies  # even the right password now waits
    other = TestClient(app)  # other accounts are unaffected; "next" cannot send them off-site
    token = csrf_of(other.get("/login?next=//evil.example/x").text)
    r = other.post(
        "/login",
        data={"csrf": token, "username": "hoa", "password": "matkhau-demo", "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "vf_session" in other.cookies and r.headers["location"] == "/"


def test_bad_input_gets_4xx_not_500(app_and_db):
    client = TestClient(app_and_db[0], raise_server_exceptions=True)
    signup(client, "anh")
    token = csrf_of(client.get("/").text)
    assert client.post("/tasks/rank", data={"csrf": token, "parent_id": "abc"}).status_code == 400
    assert (
        client.post(
            "/tasks/rank", data={"csrf": token, "parent_id": "1", "reply": ["2", "3"], "rank": ["1", "1"]}
        ).status_code
        == 400
    )
    assert client.post("/tasks/label", data={"csrf": token, "message_id": "999999"}).status_code == 404
    assert (
        client.post("/tasks/label", data={"csrf": token, "message_id": "2", "quality": "9"}).status_code
        == 400
    )
    assert (
        client.post(
            "/tasks/reply",
            data={"csrf": token, "parent_id": "999999", "kind": "assistant_reply", "text": "x"},
        ).status_code
        == 404
    )
    assert client.get("/tasks/nonsense").status_code == 404
    assert client.get("/tasks/rank?message=2").status_code == 400  # a reply has no replies to rank
    assert client.get("/tasks/prompter_reply?message=1").status_code == 400  # wrong role for that parent
    r = client.post(
        "/tasks/reply",
        data={"csrf": token, "parent_id": "1", "kind": "../../base", "text": "Xin chào các bạn"},
    )
    assert r.status_code == 400
    with TestClient(app_and_db[0]) as c2:
        assert c2.get("/drafts/abc", follow_redirects=False).status_code in (303, 422)
    with app_and_db[1].read() as s:
        assert s.scalar(select(func.count(Draft.id))) == 0
