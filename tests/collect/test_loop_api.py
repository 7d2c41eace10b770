"""The community loop's JSON API: bearer-token auth, pushing model replies, reading rankings back."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from vinaforge_collect.models import ApiCall, ApiToken, Message, User
from vinaforge_collect.security import create_api_token
from vinaforge_collect.web import create_app

from .helpers import add_user, csrf_of, make_settings

PROMPT = [{"role": "user", "content": "Vì sao mùa thu ở Hà Nội lại được nhiều người yêu thích đến vậy?"}]
REPLIES = [
    "Mùa thu Hà Nội có gió heo may, nắng vàng dịu và hương hoa sữa thoang thoảng trên phố.",
    "Vì trời se lạnh, cây lá chuyển màu và người dân thong thả dạo quanh hồ Gươm vào buổi chiều.",
    "Nhiều người nhớ cốm làng Vòng gói trong lá sen, món quà đặc trưng chỉ có vào mùa này.",
]
ENGLISH = "Autumn in Hanoi is loved because the weather is cool and the streets are beautiful."
PASSWORD = "mat-khau-123"


def _token(db, settings, username: str, role: str) -> str:
    with db.write() as s:
        return create_api_token(s, add_user(s, settings, username, role), name=f"{username}-test")


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _login(app, username: str) -> TestClient:
    client = TestClient(app)
    r = client.post("/login", data={"csrf": csrf_of(client.get("/login").text), "username": username,
                                    "password": PASSWORD}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    return client


def rank_through_form(client: TestClient, parent_id: int, order: list[int]) -> None:
    """Rank like a person: open the rank task of the parent and send the form with ``order`` best first."""
    page = client.get(f"/tasks/rank?message={parent_id}")
    assert page.status_code == 200
    shown = [int(x) for x in re.findall(r'name="reply" value="(\d+)"', page.text)]
    assert sorted(shown) == sorted(order)
    data = {"csrf": csrf_of(page.text), "parent_id": str(parent_id), "reply": [str(m) for m in shown],
            "rank": [str(order.index(m) + 1) for m in shown]}  # fmt: skip
    r = client.post("/tasks/rank", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text[-500:]


@pytest.fixture
def loop_app(db):
    settings = make_settings(db.url, reviews_needed=2, login_max_failures_per_ip=10)
    return settings, create_app(settings, db)


def test_every_route_needs_a_moderator_token_and_no_cookie(db, loop_app):
    settings, app = loop_app
    admin_token = _token(db, settings, "quantri", "admin")
    contributor_token = _token(db, settings, "minh", "contributor")
    banned_token = _token(db, settings, "lan", "moderator")
    with db.write() as s:
        s.scalar(select(User).where(User.username == "lan")).banned = True
    revoked = _token(db, settings, "hoa", "moderator")
    with db.write() as s:
        s.scalar(select(ApiToken).where(ApiToken.name == "hoa-test")).revoked = True
    anon = TestClient(app)
    body = {"model": "tiny", "items": [{"prompt": PROMPT, "replies": REPLIES}]}
    routes = [("post", "/api/loop/replies", {"json": body}), ("get", "/api/loop/rankings?parent_ids=1", {})]
    for method, url, kw in routes:
        r = getattr(anon, method)(url, **kw)
        assert r.status_code == 401 and "Bearer" in r.json()["error"] and "set-cookie" not in r.headers
        for token, status in ((contributor_token, 403), (banned_token, 403), (revoked, 401),
                              (admin_token.replace("vfc_", "vfc_x"), 401)):  # fmt: skip
            assert getattr(anon, method)(url, headers=_bearer(token), **kw).status_code == status
        assert (
            getattr(anon, method)(url, headers={"Authorization": f"Basic {admin_token}"}, **kw).status_code
            == 401
        )
    # a logged-in admin's session cookie opens nothing here: bearer tokens only (hence no CSRF check)
    with db.write() as s:
        add_user(s, settings, "boss", "admin")
    browser = _login(app, "boss")
    assert browser.get("/api/loop/rankings?parent_ids=1").status_code == 401
    # JSON errors everywhere under /api, the field named on bad input
    ok = _bearer(admin_token)
    r = anon.post("/api/loop/replies", headers=ok, json={"model": "tiny", "items": [{"prompt": PROMPT}]})
    assert r.status_code == 422 and "replies" in r.json()["error"]
    r = anon.get("/api/loop/rankings?parent_ids=1,x", headers=ok)
    assert r.status_code == 400 and "parent_ids" in r.json()["error"]
    assert anon.get("/api/nothing", headers=ok).json()["error"]
    # only the token's hash is stored
    with db.read() as s:
        hashes = list(s.scalars(select(ApiToken.token_hash)))
    assert admin_token not in hashes and all(len(h) == 64 for h in hashes)
    # too many bad tokens from one address: 429, even with the right one (the login brute-force rule)
    for _ in range(6):
        anon.get("/api/loop/rankings?parent_ids=1", headers=_bearer("vfc_guess"))
    assert anon.get("/api/loop/rankings?parent_ids=1", headers=ok).status_code == 429


def test_rate_limit_per_token(db):
    settings = make_settings(db.url, max_api_calls_per_hour=3)
    app = create_app(settings, db)
    token = _token(db, settings, "quantri", "admin")
    client = TestClient(app)
    codes = [
        client.get("/api/loop/rankings?parent_ids=1", headers=_bearer(token)).status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    with db.read() as s:
        assert s.scalar(select(func.count(ApiCall.id))) == 3  # the audit trail of calls


def test_push_checks_replies_and_is_idempotent(db, loop_app):
    settings, app = loop_app
    client = TestClient(app)
    ok = _bearer(_token(db, settings, "quantri", "admin"))
    multi = [{"role": "user", "content": "Bạn có thể gợi ý một món ăn sáng ở Sài Gòn không?"},
             {"role": "assistant", "content": "Bạn có thể thử bánh mì thịt nướng hoặc hủ tiếu Nam Vang."},
             {"role": "user", "content": "Món nào rẻ hơn và dễ tìm hơn ở các khu chợ đông người?"}]  # fmt: skip
    body = {"model": "policy-v1", "items": [
        {"prompt": PROMPT, "replies": [*REPLIES, ENGLISH]},
        {"prompt": [{"role": "system", "content": "Bạn là trợ lý."}, *PROMPT], "replies": REPLIES[:1]},
        {"prompt": [*PROMPT, {"role": "assistant", "content": REPLIES[0]}], "replies": REPLIES[1:2]},
        {"prompt": multi, "replies": ["Bánh mì thường rẻ hơn, xe bánh mì có ở gần như mọi góc phố và chợ."]},
    ]}  # fmt: skip
    r = client.post("/api/loop/replies", headers=ok, json=body)
    assert r.status_code == 200, r.text
    first, system, ends_with_reply, follow_up = r.json()["items"]
    counts = r.json()["counts"]
    assert (
        counts["replies_in"]
        == 7
        == counts["replies_stored"] + counts["replies_existing"] + counts["replies_rejected"]
    )
    assert counts == {**counts, "items": 4, "items_refused": 2, "prompts_created": 2, "replies_stored": 4,
                      "replies_existing": 0, "replies_rejected": 3}  # fmt: skip
    assert len(first["reply_ids"]) == 3 and first["prompt_created"] and first["error"] is None
    assert first["rejected"][0]["reply"] == ENGLISH and "tiếng Việt" in first["rejected"][0]["reasons"][0]
    assert system["parent_id"] is None and "system" in system["error"] and system["rejected"][0]["reasons"]
    assert ends_with_reply["parent_id"] is None and "user turn" in ends_with_reply["error"]
    with db.read() as s:
        parent = s.get(Message, first["parent_id"])
        replies = [s.get(Message, i) for i in first["reply_ids"]]
        refused = s.get(Message, first["rejected"][0]["message_id"])
        thread = [s.get(Message, follow_up["parent_id"])]
        while thread[-1].parent_id:
            thread.append(s.get(Message, thread[-1].parent_id))
        n_messages = s.scalar(select(func.count(Message.id)))
    # pushed by an admin: accepted at once although this app wants 2 reviews; kept apart from people's text
    assert (
        parent.role == "prompter"
        and parent.origin == "import"
        and parent.visible
        and parent.author_id is None
    )
    assert [m.text for m in replies] == REPLIES
    assert all(m.origin == "model" and m.model_name == "policy-v1" and m.visible and m.role == "assistant"
               for m in replies)  # fmt: skip
    assert refused.review_state == "rejected" and refused.checks["errors"]  # nothing silently lost
    assert [m.role for m in thread[::-1]] == ["prompter", "assistant", "prompter"] and thread[-1].depth == 0

    # the same push again: the same ids, nothing new stored
    again = client.post("/api/loop/replies", headers=ok, json=body).json()
    assert [i["parent_id"] for i in again["items"]] == [
        first["parent_id"],
        None,
        None,
        follow_up["parent_id"],
    ]
    assert again["items"][0]["reply_ids"] == first["reply_ids"] and not again["items"][0]["prompt_created"]
    assert again["counts"]["replies_stored"] == 0 and again["counts"]["replies_existing"] == 4
    assert again["counts"]["replies_rejected"] == 3
    with db.read() as s:
        assert s.scalar(select(func.count(Message.id))) == n_messages
    # a new sample for a known prompt joins the same parent
    more = client.post("/api/loop/replies", headers=ok, json={"model": "policy-v2", "items": [
        {"prompt": PROMPT, "replies": ["Mùa thu là lúc thời tiết mát mẻ nhất trong năm, rất hợp để đi chơi."]}]})  # fmt: skip
    item = more.json()["items"][0]
    assert item["parent_id"] == first["parent_id"] and len(item["reply_ids"]) == 1
    # the pushed messages show on the app's pages as model replies and an imported prompt
    page = TestClient(app).get(f"/messages/{first['parent_id']}")
    assert page.status_code == 200 and "mô hình" in page.text and REPLIES[0] in page.text


def test_rankings_appear_after_min_rankings_people_ranked(db, loop_app):
    settings, app = loop_app
    client = TestClient(app)
    ok = _bearer(_token(db, settings, "quantri", "admin"))
    pushed = client.post("/api/loop/replies", headers=ok,
                         json={"model": "tiny", "items": [{"prompt": PROMPT, "replies": REPLIES}]}).json()  # fmt: skip
    pid = pushed["items"][0]["parent_id"]
    a, b, c = pushed["items"][0]["reply_ids"]
    url = f"/api/loop/rankings?parent_ids={pid},999999&min_rankings=1"

    def fetch() -> dict:
        r = client.get(url, headers=ok)
        assert r.status_code == 200, r.text
        return r.json()

    got = fetch()
    assert got["min_rankings"] == 3  # the app's floor: asking for fewer does not lower it
    assert got["items"] == [] and got["waiting"] == [{"parent_id": pid, "n_rankings": 0, "replies": 3}]
    assert got["missing"] == [999999]
    with db.write() as s:
        for name in ("r1", "r2", "r3", "r4"):
            add_user(s, settings, name)
    raters = {name: _login(app, name) for name in ("r1", "r2", "r3", "r4")}
    rank_through_form(raters["r1"], pid, [a, b, c])
    rank_through_form(raters["r2"], pid, [a, c, b])
    assert fetch()["waiting"][0]["n_rankings"] == 2 and fetch()["items"] == []
    rank_through_form(raters["r3"], pid, [b, a, c])
    (item,) = fetch()["items"]
    # Ranked Pairs: a > b (2–1), a > c (3–0), b > c (2–1)
    assert item["parent_id"] == pid and item["reply_ids"] == [a, b, c] and item["ranks"] == [1, 2, 3]
    assert item["replies"] == REPLIES and item["prompt"] == PROMPT and item["n_rankings"] == 3
    assert item["origins"] == ["model"] * 3 and item["model_names"] == ["tiny"] * 3
    # a fourth rater splits a–b and b–c evenly: a and b now share the first rank
    rank_through_form(raters["r4"], pid, [c, b, a])
    (item,) = fetch()["items"]
    assert item["reply_ids"] == [a, b, c] and item["ranks"] == [1, 1, 2] and item["n_rankings"] == 4
    # a reply pushed later was seen by none of these raters: the parent waits for complete rankings again
    client.post("/api/loop/replies", headers=ok, json={"model": "tiny", "items": [
        {"prompt": PROMPT, "replies": ["Mùa thu là lúc thời tiết mát mẻ nhất trong năm, rất hợp để đi chơi."]}]})  # fmt: skip
    got = fetch()
    assert got["items"] == [] and got["waiting"] == [{"parent_id": pid, "n_rankings": 0, "replies": 4}]


def test_token_cli(tmp_path):
    from typer.testing import CliRunner

    from vinaforge.cli import app

    url = f"sqlite:///{tmp_path / 'c.db'}"
    env = {"VINAFORGE_COLLECT_NEW_PASSWORD": PASSWORD, "VINAFORGE_COLLECT_ARGON2_MEMORY_KIB": "1024",
           "VINAFORGE_COLLECT_ARGON2_TIME_COST": "1"}  # fmt: skip
    runner = CliRunner()
    assert (
        runner.invoke(
            app, ["collect", "user", "add", "quantri", "--role", "admin", "--db", url], env=env
        ).exit_code
        == 0
    )
    assert runner.invoke(app, ["collect", "user", "add", "minh", "--db", url], env=env).exit_code == 0
    res = runner.invoke(
        app, ["collect", "token", "create", "--user", "quantri", "--name", "loop", "--db", url]
    )
    assert res.exit_code == 0, res.output
    token = res.output.strip()
    assert token.startswith("vfc_") and len(token) > 40
    res = runner.invoke(app, ["collect", "token", "create", "--user", "minh", "--db", url])
    assert res.exit_code == 2 and "moderators and admins" in res.output
    res = runner.invoke(app, ["collect", "token", "create", "--user", "nobody", "--db", url])
    assert res.exit_code == 2 and "no user named" in res.output
    listing = runner.invoke(app, ["collect", "token", "list", "--db", url]).output
    assert "quantri" in listing and "loop" in listing and "live" in listing and token not in listing
    assert runner.invoke(app, ["collect", "token", "revoke", "1", "--db", url]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["collect", "token", "list", "--db", url]).output
    assert runner.invoke(app, ["collect", "token", "revoke", "7", "--db", url]).exit_code == 2
