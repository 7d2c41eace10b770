"""Small builders shared by the collection-app tests."""

from __future__ import annotations

import random
import re
import socket

from vinaforge_collect.config import Settings
from vinaforge_collect.models import User
from vinaforge_collect.security import Passwords

# Cheap argon2 parameters for tests only (the scheme is the same, the cost is not the point here),
# and statistics recomputed at every change so that pages show each action at once.
FAST_HASH = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "stats_refresh_s": 0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_settings(url: str, **overrides) -> Settings:
    return Settings(database_url=url, secret_key="test-secret-key", **{**FAST_HASH, **overrides})


# Vietnamese syllables to build many distinct texts that pass language ID and near-duplicate checks.
SYLLABLES = (
    "học sinh trường làng đồng lúa mùa thu gió heo may phố cổ hồ gươm cà phê sữa đá bánh mì "
    "phở bò bún chả nem rán chợ đêm sông hồng cầu long biên xe máy mưa phùn nắng vàng biển xanh "
    "núi cao rừng già thư viện sách vở bài tập kỳ thi giáo viên bác sĩ bệnh viện nhà máy công nhân "
    "nông dân máy tính điện thoại mạng lưới khoa học lịch sử văn hóa âm nhạc bóng đá du lịch "
    "khách sạn món ăn gia đình bạn bè hàng xóm thành phố nông thôn tiếng nói chữ viết"
).split()
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def vi_text(rng: random.Random, n: int = 14, question: bool = True) -> str:
    words = [rng.choice(SYLLABLES) for _ in range(n)]
    words[0] = words[0].capitalize()
    return " ".join(words) + ("?" if question else ".")


def add_user(s, settings, username: str, role: str = "contributor", password: str = "mat-khau-123") -> User:
    user = User(username=username, password_hash=Passwords(settings).hash(password), role=role,
                terms_version=settings.terms_version)  # fmt: skip
    s.add(user)
    s.flush()
    return user


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "page has no CSRF token"
    return m.group(1)
