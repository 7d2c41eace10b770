"""The whole contributor story in a real headless Chromium (Debian ``chromium`` + Playwright).

Sign up, write a prompt, reply, rank three replies, flag spam as a second user, moderate as a
moderator, and watch the leaderboard follow. Screenshots go to ``docs/img/collect-*.png`` when
they are missing or when ``VINAFORGE_SCREENSHOTS=1`` (so ordinary runs leave the tree clean).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from sqlalchemy import select
from vinaforge_collect.models import Message
from vinaforge_collect.seed import load_seed

from .conftest import CHROMIUM_FLAGS, live_server
from .helpers import make_settings

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SPAM = "Mua ngay khóa học làm giàu cấp tốc, giá rẻ bất ngờ, nhắn tin để nhận ưu đãi hôm nay!"


def _shot(page, tmp_path: Path, name: str) -> None:
    out = tmp_path / f"collect-{name}.png"
    page.screenshot(path=str(out), full_page=True)
    target = DOCS_IMG / out.name
    if os.environ.get("VINAFORGE_SCREENSHOTS") == "1" or not target.exists():
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, target)


def _score(page, base: str, username: str) -> float:
    page.goto(base + "/leaderboard")
    row = page.locator(
        "table.leaderboard tr", has=page.locator("td.name", has_text=re.compile(f"^{username}$"))
    )
    return float(row.locator("td.score").inner_text())


def test_contributor_story_in_chromium(chromium_path, db, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    settings = make_settings(db.url, reviews_needed=0)
    load_seed(db, settings)
    with db.read() as s:

        def root(prefix: str) -> int:
            return s.scalar(
                select(Message.id).where(Message.parent_id.is_(None), Message.text.like(prefix + "%"))
            )

        pho, interest, mid_autumn = (
            root("Làm thế nào để nấu phở"),
            root("Giải thích giúp mình"),
            root("Tóm tắt giúp mình"),
        )
    with live_server(db.url, reviews_needed=0) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_FLAGS)
        try:
            # ---- a new contributor
            mai = browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN").new_page()
            mai.goto(base + "/")
            _shot(mai, tmp_path, "home")
            mai.get_by_role("link", name="Đăng ký").first.click()
            mai.get_by_label("Tên đăng nhập").fill("mai")
            mai.get_by_label("Mật khẩu").fill("mat-khau-cua-mai")
            mai.get_by_label(re.compile("Tôi đồng ý")).check()
            mai.get_by_role("button", name="Tạo tài khoản").click()
            expect(mai.locator(".notice")).to_contain_text("Chào mừng")

            mai.goto(base + "/tasks/prompt")
            mai.locator("textarea[name=text]").fill(
                "Mình muốn học lập trình Python từ đầu thì nên bắt đầu từ đâu?"
            )
            mai.get_by_role("button", name="Gửi").click()
            expect(mai).to_have_url(re.compile(r"/messages/\d+"))
            expect(mai.locator(".thread")).to_contain_text("lập trình Python")

            mai.goto(f"{base}/tasks/assistant_reply?message={mid_autumn}")
            mai.locator("textarea[name=text]").fill(
                "Tết Trung thu là ngày hội của thiếu nhi: các em rước đèn, phá cỗ, ăn bánh nướng bánh dẻo "
                "và ngắm trăng rằm tháng Tám cùng gia đình."
            )
            mai.get_by_role("button", name="Gửi").click()
            expect(mai).to_have_url(re.compile(r"/messages/\d+"))

            mai.goto(f"{base}/tasks/assistant_reply?message={interest}")
            mai.locator("textarea[name=text]").fill(SPAM)
            mai.get_by_role("button", name="Gửi").click()
            expect(mai).to_have_url(re.compile(r"/messages/\d+"))
            spam_id = int(re.search(r"/messages/(\d+)", mai.url).group(1))

            # ---- rank three replies, in the seed raters' order (so tau = 1 against their consensus)
            mai.goto(f"{base}/tasks/rank?message={pho}")
            selects = mai.locator("select[name=rank]")
            expect(selects).to_have_count(3)
            for k, rank in enumerate(("1", "3", "2")):
                selects.nth(k).select_option(rank)
            _shot(mai, tmp_path, "rank")
            mai.get_by_role("button", name="Lưu thứ hạng").click()
            expect(mai.locator(".notice")).to_contain_text("Đã lưu thứ hạng")
            # 10 (prompt) + 2 x 10 (replies) + 3 x 1 ranking x (1 + tau/2), tau = 1
            assert _score(mai, base, "mai") == 34.5
            expect(mai.locator("p.formula")).to_contain_text("Kendall τ")

            # ---- a second user flags the spam
            khoa = browser.new_context().new_page()
            khoa.goto(base + "/signup")
            khoa.get_by_label("Tên đăng nhập").fill("khoa")
            khoa.get_by_label("Mật khẩu").fill("mat-khau-cua-khoa")
            khoa.get_by_label(re.compile("Tôi đồng ý")).check()
            khoa.get_by_role("button", name="Tạo tài khoản").click()
            khoa.goto(f"{base}/tasks/label?message={spam_id}")
            expect(khoa.locator(".thread")).to_contain_text("khóa học làm giàu")
            khoa.get_by_label("Spam").check()
            khoa.locator("select[name=quality]").select_option("1")
            khoa.get_by_role("button", name="Lưu nhãn").click()
            expect(khoa.locator(".notice")).to_contain_text("Đã lưu nhãn")

            # ---- a moderator hides it
            lan = browser.new_context(viewport={"width": 1100, "height": 800}).new_page()
            lan.goto(base + "/login")
            lan.get_by_label("Tên đăng nhập").fill("lan")
            lan.get_by_label("Mật khẩu").fill("matkhau-demo")
            lan.get_by_role("button", name="Đăng nhập").click()
            lan.get_by_role("link", name="Kiểm duyệt").click()
            row = lan.locator("#flagged tr", has_text="khóa học làm giàu")
            expect(row).to_contain_text("mai")
            _shot(lan, tmp_path, "mod")
            row.get_by_role("button", name="Ẩn").click()
            expect(lan.locator(".notice")).to_contain_text("Đã cập nhật")
            expect(lan.locator("#flagged tr", has_text="khóa học làm giàu")).to_contain_text("ẩn")

            # ---- the leaderboard follows: the hidden reply's 10 points go, and 20 more; gone for others
            assert _score(mai, base, "mai") == 4.5
            _shot(mai, tmp_path, "leaderboard")
            anon = browser.new_context().new_page()
            assert anon.goto(f"{base}/messages/{spam_id}").status == 404
            expect(anon.locator("body")).not_to_contain_text("khóa học làm giàu")
        finally:
            browser.close()
