"""The web app: FastAPI routes over :mod:`vinaforge_collect.services`, server-rendered pages.

FastAPI/Starlette serve; Jinja2 renders with autoescaping on (user and model text is always
shown as text); there is no JavaScript and nothing from a CDN, and a strict Content Security
Policy says so to the browser. Every POST checks a CSRF token; every route checks who may see
it (pages of others' drafts and pending messages are "not found", moderator pages are 403).
The community loop's JSON API (:mod:`vinaforge_collect.api`) is mounted here too: it reads no
cookies, only bearer tokens, so it needs no CSRF token.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from vinaforge_collect import services, stats
from vinaforge_collect.api import API_PREFIX, mount_api
from vinaforge_collect.checks import analyse_text, redacted, warm_up
from vinaforge_collect.config import Settings
from vinaforge_collect.db import Database
from vinaforge_collect.models import FLAG_FIELDS, Draft, Label, LoginAttempt, Message, Ranking, User
from vinaforge_collect.security import (
    SESSION_COOKIE,
    VISITOR_COOKIE,
    Passwords,
    create_session,
    csrf_ok,
    csrf_token,
    end_session,
    login_blocked,
    record_login,
    session_user,
    valid_username,
)
from vinaforge_collect.services import Refused

log = logging.getLogger("vinaforge.collect")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
TASK_TITLES = {
    "prompt": "Viết câu hỏi",
    "assistant_reply": "Trả lời như trợ lý",
    "prompter_reply": "Trả lời như người dùng",
    "rank": "Xếp hạng câu trả lời",
    "label": "Gắn nhãn",
    "review": "Duyệt tin nhắn mới",
}
NOTICES = {
    "sent": "Đã gửi. Cảm ơn bạn!",
    "pending": "Đã gửi, đang chờ duyệt.",
    "draft": "Đã lưu bản nháp.",
    "ranked": "Đã lưu thứ hạng.",
    "labelled": "Đã lưu nhãn.",
    "reviewed": "Đã lưu đánh giá.",
    "welcome": "Chào mừng bạn!",
    "moderated": "Đã cập nhật.",
}
FLAG_NAMES = {"spam": "Spam", "pii": "Thông tin cá nhân", "not_vi": "Không phải tiếng Việt",
              "inappropriate": "Không phù hợp"}  # fmt: skip


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    db = db or Database(settings.database_url)
    db.migrate()
    secret = settings.secret_key or db.secret()
    passwords = Passwords(settings)
    warm_up(settings)
    pkg = resources.files("vinaforge_collect")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(pkg / "templates")), autoescape=True)
    templates = Jinja2Templates(env=env)
    app = FastAPI(title="vinaforge collect", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.db = settings, db
    app.mount("/static", StaticFiles(directory=str(pkg / "static")), name="static")
    mount_api(app, db, settings)  # the community loop's JSON API: bearer tokens, no cookies

    # ------------------------------------------------------------------ plumbing

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        visitor = request.cookies.get(VISITOR_COOKIE)
        if (not visitor or len(visitor) > 100) and not request.url.path.startswith(API_PREFIX):
            visitor = secrets.token_urlsafe(24)
            request.state.new_visitor = visitor
        request.state.visitor = visitor
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if getattr(request.state, "new_visitor", None):
            _cookie(response, VISITOR_COOKIE, visitor, settings, max_age=86400 * 30)
        return response

    def csrf_source(request: Request) -> str:
        return request.cookies.get(SESSION_COOKIE) or request.state.visitor

    def current_user(request: Request) -> User | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        with db.read() as s:
            return session_user(s, token)

    def render(
        request: Request, name: str, status: int = 200, user: User | None = None, **ctx: Any
    ) -> HTMLResponse:
        ok = request.query_params.get("ok")
        base = {
            "user": user,
            "csrf": csrf_token(secret, csrf_source(request)),
            "notice": NOTICES.get(ok or ""),
            "task_titles": TASK_TITLES,
            "flag_names": FLAG_NAMES,
            "errors": [],
            "warnings": [],
            "text": "",
        }
        return templates.TemplateResponse(request, name, {**base, **ctx}, status_code=status)

    def error(request: Request, message: str, status: int, user: User | None = None) -> HTMLResponse:
        return render(request, "error.html", status, user=user, message=message)

    async def posted(request: Request) -> dict[str, Any]:
        """The form fields (lists for repeated names), after the CSRF check."""
        form = await request.form()
        data: dict[str, Any] = {}
        for key in form:
            values = form.getlist(key)
            data[key] = values if len(values) > 1 else values[0]
        if not csrf_ok(
            secret, csrf_source(request), data.get("csrf") if isinstance(data.get("csrf"), str) else None
        ):
            raise Refused("Phiên biểu mẫu đã hết hạn hoặc không hợp lệ (CSRF). Hãy tải lại trang.", 403)
        return data

    async def handle(request: Request, work: Callable[..., Response], *, login: bool = True) -> Response:
        """Run a POST: CSRF check, login check, the work in a thread; refusals become error pages."""
        user = None
        try:
            data = await posted(request)
            if login:
                user = await run_in_threadpool(current_user, request)
                if user is None:
                    return RedirectResponse("/login", 303)
            return await run_in_threadpool(work, data, user)
        except Refused as err:
            return error(request, err.message, err.status, user)
        except IntegrityError:
            return error(request, "Bạn đã gửi việc này rồi.", 409, user)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
        if exc.status_code == 404:
            return error(request, "Không tìm thấy trang.", 404)
        return error(request, str(exc.detail), exc.status_code)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused):
        return error(request, exc.message, exc.status)

    def need_user(request: Request) -> User:
        user = current_user(request)
        if user is None:
            raise _Redirect("/login?next=" + quote(request.url.path))
        return user

    @app.exception_handler(_Redirect)
    async def redirect(request: Request, exc: _Redirect):
        return RedirectResponse(exc.url, 303)

    # ------------------------------------------------------------------ pages

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        with db.read() as s:
            n = s.scalar(select(func.count(Message.id)))
        return JSONResponse({"ok": True, "messages": n})

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        user = current_user(request)
        with db.read() as s:
            counts = {
                "trees": s.scalar(
                    select(func.count()).where(Message.parent_id.is_(None), services.visible_filter())
                ),
                "messages": s.scalar(select(func.count()).where(services.visible_filter())),
                "rankings": s.scalar(select(func.count(Ranking.id))),
                "users": s.scalar(select(func.count(User.id))),
            }
        return render(request, "index.html", user=user, counts=counts)

    @app.get("/signup", response_class=HTMLResponse)
    def signup_page(request: Request):
        return render(request, "signup.html", user=current_user(request), form={}, errors=[],
                      terms_version=settings.terms_version, license=settings.license)  # fmt: skip

    @app.post("/signup")
    async def signup(request: Request):
        def work(data: dict, _user):
            username = str(data.get("username", "")).strip().lower()
            password = str(data.get("password", ""))
            errors = []
            if reason := valid_username(username):
                errors.append(reason)
            if len(password) < settings.min_password_len:
                errors.append(f"Mật khẩu cần ít nhất {settings.min_password_len} ký tự.")
            if data.get("consent") != "yes":
                errors.append("Bạn cần đồng ý với điều khoản đóng góp.")
            client = _client(request)
            with db.read() as s:
                if s.scalar(select(User.id).where(User.username == username)):
                    errors.append("Tên đăng nhập đã có người dùng.")
                since = stats_since(timedelta(hours=1))
                recent = s.scalar(select(func.count()).where(LoginAttempt.username == "+signup",
                                  LoginAttempt.client == client, LoginAttempt.created_at >= since)) or 0  # fmt: skip
                if recent >= settings.max_signups_per_ip_hour:
                    errors.append("Quá nhiều tài khoản mới từ địa chỉ này trong một giờ; hãy thử lại sau.")
            if errors:
                return render(request, "signup.html", 400, form={"username": username}, errors=errors,
                              terms_version=settings.terms_version, license=settings.license)  # fmt: skip
            hashed = passwords.hash(password)
            with db.write() as s:
                user = User(username=username, password_hash=hashed, terms_version=settings.terms_version)
                s.add(user)
                s.flush()
                token = create_session(s, user, settings.session_days)
                record_login(s, "+signup", client, True)
            return _logged_in(token, "/?ok=welcome")

        return await handle(request, work, login=False)

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/"):
        return render(request, "login.html", user=current_user(request), errors=[], username="", next=next)

    @app.post("/login")
    async def login(request: Request):
        def work(data: dict, _user):
            username = str(data.get("username", "")).strip().lower()[:40]
            password = str(data.get("password", ""))
            client = _client(request)
            with db.read() as s:
                blocked = login_blocked(s, settings, username, client)
                user = s.scalar(select(User).where(User.username == username))
            if blocked:
                return render(request, "login.html", 429, errors=[
                    "Quá nhiều lần đăng nhập sai. Hãy thử lại sau ít phút."], username=username)  # fmt: skip
            ok = passwords.verify(user.password_hash if user else None, password) and user is not None
            with db.write() as s:
                record_login(s, username, client, ok and not user.banned)
                if not ok or user.banned:
                    return render(request, "login.html", 401, errors=["Sai tên đăng nhập hoặc mật khẩu."],
                                  username=username)  # fmt: skip
                if passwords.needs_rehash(user.password_hash):
                    s.get(User, user.id).password_hash = passwords.hash(password)
                end_session(s, request.cookies.get(SESSION_COOKIE))
                token = create_session(s, user, settings.session_days)
            nxt = str(data.get("next") or "/")
            return _logged_in(token, nxt if nxt.startswith("/") and not nxt.startswith("//") else "/")

        return await handle(request, work, login=False)

    @app.post("/logout")
    async def logout(request: Request):
        def work(_data, _user):
            with db.write() as s:
                end_session(s, request.cookies.get(SESSION_COOKIE))
            resp = RedirectResponse("/", 303)
            resp.delete_cookie(SESSION_COOKIE, path="/")
            return resp

        return await handle(request, work, login=False)

    # ------------------------------------------------------------------ tasks

    @app.get("/tasks/{kind}", response_class=HTMLResponse)
    def task_page(request: Request, kind: str, message: int | None = None):
        user = need_user(request)
        if kind not in TASK_TITLES:
            return error(request, "Không có loại nhiệm vụ này.", 404, user)
        with db.read() as s:
            if message is not None:
                target = s.get(Message, message)
                if target is None or not services.can_view(user, target):
                    return error(request, "Không tìm thấy tin nhắn.", 404, user)
            else:
                target = services.next_task(s, settings, user, kind)
            if kind != "prompt" and target is None:
                return render(request, "no_task.html", user=user, kind=kind)
            ctx: dict[str, Any] = {"kind": kind, "target": target, "text": "", "errors": [], "warnings": []}
            if target is not None:
                ctx["thread"] = services.thread_of(s, target)
            if kind == "rank":
                ctx["replies"] = services.visible_children(s, target.id)
                if len(ctx["replies"]) < 2:
                    return error(request, "Tin nhắn này chưa có đủ câu trả lời để xếp hạng.", 400, user)
            wanted_parent = {"assistant_reply": "prompter", "prompter_reply": "assistant"}.get(kind)
            if wanted_parent and (target.role != wanted_parent or not target.visible):
                return error(request, "Không thể trả lời tin nhắn này theo vai đã chọn.", 400, user)
            return render(request, f"task_{_template_of(kind)}.html", user=user, **ctx)

    @app.post("/tasks/prompt")
    async def post_prompt(request: Request):
        return await handle(request, lambda d, u: _post_message(request, d, u, None))

    @app.post("/tasks/reply")
    async def post_reply(request: Request):
        def work(data, user):
            parent_id = _int(data.get("parent_id"))
            if parent_id is None:
                raise Refused("Thiếu tin nhắn gốc.", 400)
            return _post_message(request, data, user, parent_id)

        return await handle(request, work)

    def _post_message(request: Request, data: dict, user: User, parent_id: int | None) -> Response:
        text = str(data.get("text", ""))
        kind = "prompt" if parent_id is None else str(data.get("kind"))
        if kind not in ("prompt", "assistant_reply", "prompter_reply"):
            raise Refused("Loại nhiệm vụ không hợp lệ.", 400)
        if data.get("action") == "draft":
            with db.write() as s:
                draft = services.save_draft(s, user, kind, text, parent_id)
            return RedirectResponse(f"/drafts/{draft.id}?ok=draft", 303)
        pre = analyse_text(settings, services.normalise_text(text))  # outside the write lock
        with db.write() as s:
            sub = services.submit_message(s, settings, user, text, parent_id, pii_ack=data.get("pii_ack") == "1",
                                          pre=pre)  # fmt: skip
            if sub.message is not None:
                mid, state = sub.message.id, sub.message.review_state
                draft_id = _int(data.get("draft_id"))
                if draft_id is not None:  # sent from a draft: the draft is done
                    s.delete(services.own_draft(s, user, draft_id))
        if sub.message is None:
            with db.read() as s:
                parent = s.get(Message, parent_id) if parent_id else None
                thread = services.thread_of(s, parent) if parent else []
            status = 400 if sub.checks.errors else 200
            shown = redacted(text) if sub.checks.warnings and not sub.checks.errors else text
            return render(request, f"task_{_template_of(kind)}.html", status, user=user, kind=kind, target=parent,
                          thread=thread, text=shown, original=text, errors=sub.checks.errors,
                          warnings=sub.checks.warnings)  # fmt: skip
        return RedirectResponse(f"/messages/{mid}?ok={'sent' if state == 'accepted' else 'pending'}", 303)

    @app.post("/tasks/rank")
    async def post_rank(request: Request):
        def work(data, user):
            parent_id = _int(data.get("parent_id"))
            replies = [_int(x) for x in _as_list(data.get("reply"))]
            ranks = [_int(x) for x in _as_list(data.get("rank"))]
            if parent_id is None or None in replies or None in ranks or len(replies) != len(ranks):
                raise Refused("Biểu mẫu xếp hạng không hợp lệ.", 400)
            if sorted(ranks) != list(range(1, len(ranks) + 1)):
                raise Refused("Mỗi câu trả lời phải có đúng một hạng khác nhau (1, 2, 3...).", 400)
            order = [r for _, r in sorted(zip(ranks, replies, strict=True))]
            with db.write() as s:
                services.submit_ranking(s, settings, user, parent_id, order)
            return RedirectResponse("/tasks/rank?ok=ranked", 303)

        return await handle(request, work)

    @app.post("/tasks/label")
    async def post_label(request: Request):
        def work(data, user):
            mid = _int(data.get("message_id"))
            if mid is None:
                raise Refused("Thiếu tin nhắn.", 400)
            flags = {f: data.get(f) == "1" for f in FLAG_FIELDS}
            with db.write() as s:
                services.submit_label(s, settings, user, mid, flags, _int(data.get("quality")))
            return RedirectResponse("/tasks/label?ok=labelled", 303)

        return await handle(request, work)

    @app.post("/tasks/review")
    async def post_review(request: Request):
        def work(data, user):
            mid = _int(data.get("message_id"))
            if mid is None or data.get("decision") not in ("accept", "reject"):
                raise Refused("Biểu mẫu duyệt không hợp lệ.", 400)
            with db.write() as s:
                services.submit_review(s, settings, user, mid, data["decision"] == "accept")
            return RedirectResponse("/tasks/review?ok=reviewed", 303)

        return await handle(request, work)

    # ------------------------------------------------------------------ reading

    @app.get("/messages/{mid}", response_class=HTMLResponse)
    def message_page(request: Request, mid: int):
        user = current_user(request)
        with db.read() as s:
            msg = s.get(Message, mid)
            if msg is None or not services.can_view(user, msg):
                return error(request, "Không tìm thấy tin nhắn.", 404, user)
            thread = services.thread_of(s, msg)
            children = services.visible_children(s, mid)
            agg = stats.consensus(s, settings).parents.get(mid)
        return render(request, "message.html", user=user, msg=msg, thread=thread, children=children, agg=agg,
                      min_rankings=settings.min_rankings)  # fmt: skip

    @app.get("/drafts", response_class=HTMLResponse)
    def drafts(request: Request):
        user = need_user(request)
        with db.read() as s:
            rows = list(s.scalars(select(Draft).where(Draft.user_id == user.id).order_by(Draft.id.desc())))
        return render(request, "drafts.html", user=user, drafts=rows)

    @app.get("/drafts/{draft_id}", response_class=HTMLResponse)
    def draft_page(request: Request, draft_id: int):
        user = need_user(request)
        with db.read() as s:
            draft = services.own_draft(s, user, draft_id)
        return render(request, "draft.html", user=user, draft=draft)

    @app.get("/leaderboard", response_class=HTMLResponse)
    def leaderboard_page(request: Request):
        user = current_user(request)
        with db.read() as s:
            rows = stats.leaderboard(s, settings)
        return render(request, "leaderboard.html", user=user, rows=rows, points=stats.POINTS,
                      formula=stats.SCORING.format(min_rankings=settings.min_rankings))  # fmt: skip

    # ------------------------------------------------------------------ moderation

    def need_moderator(request: Request) -> User:
        user = need_user(request)
        if not user.is_moderator:
            raise Refused("Trang này chỉ dành cho người kiểm duyệt.", 403)
        return user

    @app.get("/mod", response_class=HTMLResponse)
    def mod_page(request: Request):
        user = need_moderator(request)
        with db.read() as s:
            flagged = list(s.scalars(select(Message).where((Message.hidden.is_(True)) | (Message.red_flags > 0))
                                     .order_by(Message.red_flags.desc(), Message.id.desc()).limit(100)))  # fmt: skip
            pending = list(
                s.scalars(
                    select(Message).where(Message.review_state == "pending").order_by(Message.id).limit(100)
                )
            )
            pii = [
                m
                for m in s.scalars(select(Message).order_by(Message.id.desc()).limit(500))
                if (m.checks or {}).get("pii")
            ]
            raters = stats.rater_report(s, settings)
            cons = stats.consensus(s, settings)
            users = list(s.scalars(select(User).order_by(User.id)))
        low_alpha = sorted((p for p in cons.parents.values() if p.alpha is not None), key=lambda p: p.alpha)[
            :50
        ]
        return render(request, "mod.html", user=user, flagged=flagged, pending=pending, pii=pii,
                      suspicious=stats.suspicious(raters, settings), raters=raters, low_alpha=low_alpha,
                      users=users)  # fmt: skip

    @app.post("/mod/messages/{mid}")
    async def mod_message(request: Request, mid: int):
        def work(data, user):
            with db.write() as s:
                actor = s.get(User, user.id)
                services.moderate_message(
                    s, actor, mid, str(data.get("action", "")), str(data.get("note", ""))
                )
            return RedirectResponse("/mod?ok=moderated", 303)

        return await handle(request, work)

    @app.post("/mod/users/{uid}")
    async def mod_user(request: Request, uid: int):
        def work(data, user):
            role = data.get("role") or None
            banned = {"ban": True, "unban": False}.get(str(data.get("action", "")))
            with db.write() as s:
                services.set_user_state(s, s.get(User, user.id), uid, role=role, banned=banned)
            return RedirectResponse("/mod?ok=moderated", 303)

        return await handle(request, work)

    @app.get("/me", response_class=HTMLResponse)
    def me(request: Request):
        user = need_user(request)
        with db.read() as s:
            mine = list(
                s.scalars(
                    select(Message).where(Message.author_id == user.id).order_by(Message.id.desc()).limit(100)
                )
            )
            n_rank = s.scalar(select(func.count()).where(Ranking.user_id == user.id))
            n_label = s.scalar(select(func.count()).where(Label.user_id == user.id))
        return render(request, "me.html", user=user, mine=mine, n_rank=n_rank, n_label=n_label)

    def _logged_in(token: str, url: str) -> Response:
        resp = RedirectResponse(url, 303)
        _cookie(resp, SESSION_COOKIE, token, settings, max_age=settings.session_days * 86400)
        return resp

    return app


class _Redirect(Exception):
    def __init__(self, url: str):
        self.url = url


def stats_since(delta):
    from vinaforge_collect.models import utcnow

    return utcnow() - delta


def _cookie(resp: Response, name: str, value: str, settings: Settings, max_age: int) -> None:
    resp.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="lax", secure=settings.cookie_secure, path="/"
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _template_of(kind: str) -> str:
    return "reply" if kind in ("assistant_reply", "prompter_reply") else kind
