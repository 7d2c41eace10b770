"""Aggregation, reliability, automatic checks, the rules of each task, export and the CLI plugin."""

from __future__ import annotations

import json
import random

import pytest
from scipy.stats import kendalltau
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from vinaforge_collect import aggregate, services
from vinaforge_collect.db import current_revision
from vinaforge_collect.models import Message, Ranking
from vinaforge_collect.seed import load_seed

from .helpers import add_user, make_settings

# ----------------------------------------------------------------------------- aggregation


def test_ranked_pairs_follows_majorities_and_breaks_cycles_by_strength():
    # Tideman's classic example, shape only: A>B 3-2, B>C 4-1, C>A 3-2 -> the weakest (C>A) is dropped.
    votes = [[1, 2, 3]] * 2 + [[2, 3, 1]] * 2 + [[3, 1, 2]]
    assert aggregate.ranked_pairs(votes) == [1, 2, 3]
    assert aggregate.ranked_pairs([[5, 4], [4, 5], [4, 5]]) == [4, 5]
    # partial rankings: a rater who saw only two of the replies still counts for that pair
    assert aggregate.ranked_pairs([[1, 2], [2, 3], [1, 3]]) == [1, 2, 3]


def test_bradley_terry_orders_like_the_wins_and_is_reported_beside_ranked_pairs():
    votes = [[1, 2, 3], [1, 3, 2], [1, 2, 3], [2, 1, 3]]
    bt = aggregate.bradley_terry_scores(votes)
    assert bt[1] > bt[2] > bt[3]
    res = aggregate.aggregate_parent(9, votes, min_rankings=3)
    assert res.counted and res.ranked_pairs == [1, 2, 3] and set(res.bradley_terry) == {1, 2, 3}
    assert not aggregate.aggregate_parent(9, votes[:2], min_rankings=3).counted


def test_agreement_statistics():
    assert aggregate.krippendorff_alpha([[1, 2, 3], [1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)
    assert aggregate.krippendorff_alpha([[1, 2, 3], [3, 2, 1]]) < 0
    assert aggregate.kendall_tau([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert aggregate.kendall_tau([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    rng = random.Random(0)
    for _ in range(50):  # the hand-written tau is scipy's tau-b on strict orders
        order = rng.sample(range(6), 6)
        expected = kendalltau(range(6), [order.index(m) for m in range(6)]).statistic
        assert aggregate.kendall_tau(order, list(range(6))) == pytest.approx(expected)
    # leave-one-out: the contrarian disagrees with the others' consensus, they agree with each other
    taus = aggregate.rater_agreement({7: [(1, [1, 2, 3]), (2, [1, 2, 3]), (3, [1, 2, 3]), (4, [3, 2, 1])]}, 3)
    assert taus[1] == [pytest.approx(1.0)] and taus[4] == [pytest.approx(-1.0)]
    assert aggregate.rater_agreement({7: [(1, [1, 2]), (2, [2, 1])]}, 3) == {}


# ----------------------------------------------------------------------------- checks


def test_automatic_checks(db):
    settings = make_settings(db.url, reviews_needed=0)
    with db.write() as s:
        user = add_user(s, settings, "an")
    ok = "Bạn có thể giới thiệu giúp mình vài món ăn sáng phổ biến ở Hà Nội không?"
    cases = {
        "ngắn": "Quá ngắn",
        "What is the capital of France and why is it famous?": "Không phải tiếng Việt",
        "Vào trang cá độ bóng đá nhà cái uy tín, cá cược đánh bạc online nổ hũ ngay hôm nay!": "từ ngữ bị cấm",
        "x" * 7000: "Quá dài",
    }
    for text, expected in cases.items():
        with db.write() as s:
            sub = services.submit_message(s, settings, user, text)
        assert sub.message is None and any(expected in e for e in sub.checks.errors), (
            text[:30],
            sub.checks.errors,
        )
    with db.write() as s:
        first = services.submit_message(s, settings, user, ok)
    assert first.message is not None and first.checks.info["lang"] == "vi"
    with db.write() as s:  # a near-copy (case, punctuation and one word added) is refused
        dup = services.submit_message(
            s, settings, user, "bạn có thể giới thiệu giúp mình vài món ăn sáng phổ biến ở Hà Nội không nhỉ!!"
        )
    assert dup.message is None and dup.checks.info["near_duplicate_of"] == first.message.id
    pii = "Số điện thoại của tôi là 0912 345 678, bạn gọi giúp tôi để hỏi về lớp học tiếng Anh nhé."
    with db.write() as s:
        warned = services.submit_message(s, settings, user, pii)
    assert warned.message is None and warned.checks.warnings and warned.checks.info["pii"] == ["phone"]
    with db.write() as s:  # the author saw the warning and sends anyway: stored, marked for moderators
        sent = services.submit_message(s, settings, user, pii, pii_ack=True)
    assert sent.message is not None and sent.message.checks["pii"] == ["phone"]


# ----------------------------------------------------------------------------- task rules


def _tree(db, settings):
    with db.write() as s:
        u = {n: add_user(s, settings, n) for n in ("an", "binh", "chi", "dung", "em")}
        root = services.submit_message(
            s, settings, u["an"], "Làm sao để học tiếng Anh hiệu quả khi đi làm bận rộn?"
        ).message
        texts = [
            "Bạn nên học mỗi ngày mười lăm phút vào buổi sáng, nghe podcast khi đi xe buýt và ghi chép từ mới.",
            "Hãy đặt mục tiêu nhỏ cho từng tuần, tìm một người bạn cùng học và luyện nói thường xuyên.",
            "Đăng ký một lớp buổi tối có giáo viên bản ngữ, rồi xem phim có phụ đề song ngữ vào cuối tuần.",
        ]
        replies = [
            services.submit_message(s, settings, u[n], t, root.id).message
            for n, t in zip(("binh", "chi", "dung"), texts, strict=True)
        ]
    return u, root, replies


def test_rules_self_ranking_duplicates_review_and_auto_hide(db):
    settings = make_settings(db.url, reviews_needed=0, hide_after_flags=2)
    u, root, replies = _tree(db, settings)
    order = [r.id for r in replies]
    with db.write() as s, pytest.raises(services.Refused, match="chính mình"):
        services.submit_ranking(s, settings, u["binh"], root.id, order)  # wrote one of the replies
    with db.write() as s, pytest.raises(services.Refused, match="đúng một hạng"):
        services.submit_ranking(s, settings, u["an"], root.id, order[:2])
    with db.read() as s:  # the task queue offers this parent to a rater who wrote none of its replies
        assert services.next_task(s, settings, u["an"], "rank").id == root.id
        assert services.next_task(s, settings, u["binh"], "rank") is None
    with db.write() as s:
        services.submit_ranking(s, settings, u["an"], root.id, order)
    with db.read() as s:
        assert services.next_task(s, settings, u["an"], "rank") is None  # ranked once, not offered again
    with db.write() as s, pytest.raises(services.Refused) as err:
        services.submit_ranking(s, settings, u["an"], root.id, order)
    assert err.value.status == 409
    with db.write() as s, pytest.raises(services.Refused, match="chính mình"):
        services.submit_label(s, settings, u["binh"], replies[0].id, {"spam": True}, 1)
    for name in ("an", "em"):
        with db.write() as s:
            msg = services.submit_label(s, settings, u[name], replies[0].id, {"spam": True}, 1)
    assert msg.hidden and msg.red_flags == 2 and "cờ đỏ" in msg.hidden_reason
    with db.read() as s:  # hidden: out of the tree, out of the task queue
        assert [c.id for c in services.visible_children(s, root.id)] == order[1:]


def test_review_threshold_and_moderator_decision(db):
    settings = make_settings(db.url, reviews_needed=2)
    with db.write() as s:
        a, b, c, mod = (add_user(s, settings, n) for n in ("an", "binh", "chi", "lan"))
        s.get(type(mod), mod.id).role = "moderator"
        m1 = services.submit_message(
            s, settings, a, "Cho mình hỏi cách trồng rau muống trong thùng xốp trên ban công?"
        ).message
        m2 = services.submit_message(
            s, settings, a, "Nên chọn mua xe máy điện hay xe máy xăng để đi làm trong thành phố?"
        ).message
    assert m1.review_state == "pending"
    with db.write() as s, pytest.raises(services.Refused, match="tự duyệt"):
        services.submit_review(s, settings, a, m1.id, True)
    with db.write() as s:
        assert services.submit_review(s, settings, b, m1.id, True).review_state == "pending"
    with db.write() as s:
        assert services.submit_review(s, settings, c, m1.id, True).review_state == "accepted"
    with db.write() as s:
        assert (
            services.submit_review(s, settings, s.get(type(mod), mod.id), m2.id, False).review_state
            == "rejected"
        )


def test_rate_limit(db):
    settings = make_settings(db.url, reviews_needed=0, max_messages_per_hour=2)
    with db.write() as s:
        a = add_user(s, settings, "an")
    for text in ("Mùa hè này nên đi du lịch Đà Lạt hay Sa Pa thì hợp lý hơn?",
                 "Cách làm bánh xèo miền Tây giòn rụm như ngoài hàng là gì vậy?"):  # fmt: skip
        with db.write() as s:
            assert services.submit_message(s, settings, a, text).message is not None
    with db.write() as s, pytest.raises(services.Refused) as err:
        services.submit_message(s, settings, a, "Vì sao lá cây chuyển sang màu vàng vào mùa thu?")
    assert err.value.status == 429


# ----------------------------------------------------------------------------- schema, seed, export


def test_migrations_create_the_schema(db):
    assert current_revision(db.engine) == "0002"
    tables = set(sa_inspect(db.engine).get_table_names())
    assert {"users", "messages", "rankings", "labels", "reviews", "drafts", "api_tokens", "alembic_version"} <= tables
    db.migrate()  # idempotent
    assert current_revision(db.engine) == "0002"
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from vinaforge_collect.models import Base

    with db.engine.connect() as conn:  # the migrations build exactly the schema the models describe
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_export_contract(db, tmp_path):
    from vinaforge_collect.export import export_all

    from vinaforge.chat.readers import read_conversations, read_preferences

    settings = make_settings(db.url, reviews_needed=0)
    seeded = load_seed(db, settings)
    assert seeded["loaded"] and seeded["rankings"] == 8
    assert load_seed(db, settings)["loaded"] is False  # once only
    with db.read() as s:
        summary = export_all(s, settings, "k", tmp_path)
    counts = summary["counts"]
    for c in counts.values():
        assert c["in"] == c["kept"] + c["rejected"]
    assert counts["sft"]["kept"] == 4  # the tree without replies has no assistant turn
    convs = read_conversations(tmp_path / "sft.jsonl")
    assert not convs.rejected and len(convs.kept) == 4
    first = json.loads((tmp_path / "sft.jsonl").read_text().splitlines()[0])
    assert first["license"] == "CC-BY-4.0" and first["consent"]["terms_version"] == settings.terms_version
    # two seed parents have 3 rankings (counted): 3 ordered pairs each; the others have 2 or none
    prefs = read_preferences(tmp_path / "preferences.jsonl")
    assert not prefs.rejected and len(prefs.kept) == counts["preferences"]["kept"] == 6
    rankings = [json.loads(x) for x in (tmp_path / "rankings.jsonl").read_text().splitlines()]
    assert len(rankings) == 8 and all(
        r["rater"].startswith("r_") and "user" not in json.dumps(r) for r in rankings
    )
    with db.read() as s:
        names = {u for (u,) in s.execute(select(Message.author_id))}
    assert not any(str(n) == r["rater"] for n in names for r in rankings)
    trees = [json.loads(x) for x in (tmp_path / "trees.jsonl").read_text().splitlines()]
    assert len(trees) == 5 and all("license" in t for t in trees)


def test_third_ranking_makes_preferences(db, tmp_path):
    from vinaforge_collect.export import export_all

    settings = make_settings(db.url, reviews_needed=0)
    load_seed(db, settings)
    with db.write() as s:
        rater = add_user(s, settings, "rater3")
        root = s.scalar(select(Message).where(Message.text.like("Viết một bài thơ%")))
        replies = [m.id for m in services.visible_children(s, root.id)]
        # the seed's two rankings say 0 > 2 > 1 and 2 > 0 > 1; this third one says 2 > 1 > 0
        services.submit_ranking(s, settings, rater, root.id, [replies[2], replies[1], replies[0]])
    with db.read() as s:
        summary = export_all(s, settings, "k", tmp_path)
        assert s.scalar(select(Ranking.id).where(Ranking.user_id == rater.id))
    prefs = [json.loads(x) for x in (tmp_path / "preferences.jsonl").read_text().splitlines()]
    prefs = [p for p in prefs if p["parent_id"] == root.id]
    assert summary["counts"]["preferences"]["kept"] == 9 and len(prefs) == 3
    # Ranked Pairs: 2 > 0 (2-1), 2 > 1 (3-0), 0 > 1 (2-1)
    assert [(p["chosen_id"], p["rejected_id"]) for p in prefs] == [
        (replies[2], replies[0]),
        (replies[2], replies[1]),
        (replies[0], replies[1]),
    ]
    assert prefs[0]["prompt"][-1]["role"] == "user" and prefs[0]["bt_margin"] > 0
    assert all(p["license"] == "CC-BY-4.0" and p["n_rankings"] == 3 for p in prefs)
    sft = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    pho = next(c for c in sft if c["tree_id"] == root.id)
    assert pho["message_ids"] == [root.id, replies[2]]  # the consensus winner, not the earliest reply


def test_cli_plugin_is_mounted_without_vinaforge_importing_the_app(tmp_path):
    import subprocess

    from typer.testing import CliRunner

    from vinaforge.cli import app

    res = CliRunner().invoke(app, ["collect", "--help"])
    assert res.exit_code == 0 and "export" in res.output
    db_url = f"sqlite:///{tmp_path / 'c.db'}"
    res = CliRunner().invoke(app, ["collect", "seed", "--db", db_url])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["collect", "export", "--db", db_url, "--output", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "preferences.jsonl").exists()
    # a mistyped SQLite path is refused rather than created and exported empty
    missing = tmp_path / "typo.db"
    res = CliRunner().invoke(app, ["collect", "export", "--db", f"sqlite:///{missing}", "-o", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "no database file at" in res.output and not missing.exists()
    # an output folder under a file: one line naming it
    (tmp_path / "afile").write_text("x")
    res = CliRunner().invoke(app, ["collect", "export", "--db", db_url, "-o", str(tmp_path / "afile" / "out")])
    assert res.exit_code == 2 and "is a file, so the folder cannot be created" in res.output
    res = CliRunner().invoke(
        app, ["collect", "migrate", "--db", "postgresql+psycopg://u:s3cret@127.0.0.1:1/x"]
    )
    assert res.exit_code == 2 and "cannot open the database" in res.output and "s3cret" not in res.output
    grep = subprocess.run(["grep", "-rl", "vinaforge_collect", "vinaforge/"], capture_output=True, text=True,
                          cwd=__import__("pathlib").Path(__file__).resolve().parents[2])  # fmt: skip
    assert grep.stdout == "", "vinaforge/ must not import the app"


def test_model_replies_through_vinaforge_generate(db):
    """A real tiny model writes a reply; it is stored as origin=model with its checks."""
    pytest.importorskip("torch")
    from vinaforge_collect.replies import add_model_replies

    from vinaforge.generate import SamplingParams
    from vinaforge.generate.local import LocalBackend
    from vinaforge.model.tiny import tiny_model_for
    from vinaforge.tokenizer.resolve import resolve_tokenizer

    settings = make_settings(db.url, reviews_needed=0)
    load_seed(db, settings)
    tok = resolve_tokenizer("mistral-v0.1")
    model = tiny_model_for(tok, "mistral", layers=2, hidden=64, heads=4)
    backend = LocalBackend(model, tok)
    counts = add_model_replies(
        db, settings, backend, SamplingParams(max_new_tokens=12, seed=0), "tiny-test", limit=2
    )
    assert counts["prompts"] == 2 and counts["stored"] + counts["rejected"] + counts["failed"] == 2
    with db.read() as s:
        rows = list(s.scalars(select(Message).where(Message.origin == "model")))
    assert len(rows) == counts["stored"] + counts["rejected"]
    assert all(m.model_name == "tiny-test" and m.author_id is None and "lang" in m.checks for m in rows)
