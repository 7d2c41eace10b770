"""Curation on real text (../shared/data): conservation, deduplication, language ID.

One run, on the first news articles of the Dân trí corpus, a few laws of the VLC legal corpus,
edited copies of some articles, an English article and our own bad records.
"""

from __future__ import annotations

import itertools
import json

import pytest

from vinaforge.data.config import Config
from vinaforge.data.curate import curate
from vinaforge.data.dedup import syllable_shingles

from .helpers import near_copy, read_folder, read_jsonl, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

N_NEWS = 400
N_COPIES = 100
ENGLISH = (
    "The city council approved a new plan on Monday to expand the bus network and add protected "
    "bicycle lanes along the river. Officials said the first routes would open next spring, and "
    "that fares would stay the same for students and older residents. Critics argued the budget "
    "was too small to cover maintenance, but the mayor said the project would be reviewed every year "
    "and adjusted if ridership grew faster than expected. Residents can comment on the plan online "
    "until the end of the month, and public meetings will be held in each district."
)
MIXED = (
    "Hãng công nghệ vừa giới thiệu mẫu smartphone mới với chip AI, màn hình OLED 120Hz và pin 5.000 mAh. "
    "Theo CEO của công ty, sản phẩm hướng đến người dùng trẻ thích chơi game, livestream và chụp ảnh. "
    "Máy hỗ trợ 5G, Wi-Fi 7 và sạc nhanh qua cổng USB-C, giá bán dự kiến khoảng 12 triệu đồng. "
    "Nhiều chuyên gia nhận định thị trường điện thoại tầm trung năm nay cạnh tranh rất gay gắt, "
    "khi các hãng liên tục tung ra sản phẩm mới với cấu hình mạnh và giá mềm hơn những năm trước."
)

PII_ARTICLE = (
    "Ban tổ chức hội chợ nông sản cho biết năm nay có hơn hai trăm gian hàng đến từ các tỉnh miền Tây, "
    "trưng bày trái cây, gạo đặc sản và các sản phẩm OCOP. Hội chợ mở cửa từ tám giờ sáng đến mười giờ "
    "tối, vào cửa miễn phí. Doanh nghiệp muốn đăng ký gian hàng có thể liên hệ chị Hạnh qua số 0912 345 678 "
    "hoặc gửi thư về hộp thư hoichonongsan2024@gmail.com trước ngày mười lăm tháng sau. Người dân được "
    "khuyến khích mang theo túi vải để hạn chế rác thải nhựa trong suốt thời gian diễn ra sự kiện."
)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, shared_data):
    import gzip

    root = tmp_path_factory.mktemp("real")
    with gzip.open(shared_data / "vi_text" / "news_dantri_unc_undertheseanlp.jsonl.gz", "rt") as fh:
        news = [json.loads(line) for line in itertools.islice(fh, N_NEWS)]
    with gzip.open(shared_data / "vi_text" / "legal_vlc_undertheseanlp.jsonl.gz", "rt") as fh:
        laws = [json.loads(line) for line in itertools.islice(fh, 8)]
    write_jsonl(root / "in" / "news.jsonl", news)
    write_jsonl(root / "in" / "legal.jsonl", laws)
    originals = news[: N_COPIES * 2 : 2]
    copies = [
        {"id": f"copy-{d['id']}", "text": near_copy(d["text"], 0.05, seed=i)} for i, d in enumerate(originals)
    ]
    write_jsonl(root / "in" / "copies.jsonl", copies)
    extra = [
        {"id": "english-article", "text": ENGLISH},
        {"id": "mixed-terms", "text": MIXED},
        {"id": "pii-article", "text": PII_ARTICLE},
    ]
    write_jsonl(root / "in" / "extra.jsonl", extra)
    with open(root / "in" / "extra.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"id": "broken", "text": "no closing\n')
        fh.write('{"id": "no-field"}\n')
    out = root / "out"
    stats = curate(Config(inputs=[str(root / "in")]), out)
    n_input = len(news) + len(laws) + len(copies) + len(extra) + 2
    return out, stats, n_input, news, copies


def test_conservation(real_run):
    out, stats, n_input, _, _ = real_run
    assert stats["input"] == n_input
    assert stats["funnel_balanced"], stats["funnel_problems"]
    for row in stats["funnel"]:
        if row["kind"] != "transform":
            for m in ("docs", "chars", "syllables"):
                assert row[f"{m}_in"] == row[f"{m}_kept"] + row[f"{m}_rejected"], row
    kept = read_folder(out / "kept")
    assert len(kept) == stats["kept"]
    for filt, n in stats["rejected"].items():
        records = read_folder(out / "rejected" / filt)
        assert len(records) == n, filt
        assert all(r["filter"] == filt and r["reason"] and "value" in r for r in records)
    assert stats["kept"] + sum(stats["rejected"].values()) == n_input
    reasons = stats["rejected_reasons"]["input"]
    assert reasons.get("malformed_json") == 1 and reasons.get("missing_text_field") == 1


def test_near_duplicates_found(real_run):
    out, stats, _, news, copies = real_run
    removed = {r["id"] for f in ("exact_dedup", "minhash_dedup") for r in read_folder(out / "rejected" / f)}
    filtered = {
        r["id"] for f in stats["rejected"] if "dedup" not in f for r in read_folder(out / "rejected" / f)
    }
    pairs = [(c["id"], c["id"].removeprefix("copy-")) for c in copies]
    pairs = [(c, o) for c, o in pairs if c not in filtered and o not in filtered]  # both reached dedup
    assert len(pairs) >= 80
    found = sum(1 for c, o in pairs if (c in removed) != (o in removed))
    assert found / len(pairs) >= 0.95, (found, len(pairs))
    clusters = read_jsonl(out / "duplicate_clusters.jsonl.gz")
    members = {m: c["cluster"] for c in clusters for m in [c["kept"], *c["removed"]]}
    linked = sum(1 for c, o in pairs if c in members and members[c] == members.get(o))
    assert linked / len(pairs) >= 0.95
    kept = {r["id"]: r for r in read_folder(out / "kept")}
    sizes = [kept[x]["minhash_cluster_size"] for pair in pairs for x in pair if x in kept]
    assert len(sizes) >= 0.95 * len(pairs) and sorted(sizes)[len(sizes) // 20] >= 2  # on the kept copy


def test_distinct_articles_not_merged(real_run):
    """Under 1% false positives: originals without a planted copy that dedup removed, checked
    against their kept cluster representative's real shingle overlap."""
    out, stats, _, news, copies = real_run
    planted = {c["id"].removeprefix("copy-") for c in copies}
    by_id = {d["id"]: d["text"] for d in news}
    removed = [r for f in ("exact_dedup", "minhash_dedup") for r in read_folder(out / "rejected" / f)]
    clusters = {c["cluster"]: c for c in read_jsonl(out / "duplicate_clusters.jsonl.gz")}
    false_pos = 0
    for r in removed:
        if r["id"] not in by_id or r["id"] in planted or r["id"].startswith("copy-"):
            continue
        keeper = clusters.get(r.get("minhash_cluster_id", -1), {}).get("kept")
        if keeper in by_id:
            a = set(syllable_shingles(by_id[r["id"]], 3).tolist())
            b = set(syllable_shingles(by_id[keeper], 3).tolist())
            if len(a & b) / len(a | b) >= 0.5:
                continue  # a genuine near duplicate in the source corpus
        false_pos += 1
    distinct = len([d for d in news if d["id"] not in planted])
    assert false_pos / distinct < 0.01, (false_pos, distinct)


def test_language_labels(real_run):
    out, _, _, _, _ = real_run
    kept = {r["id"]: r for r in read_folder(out / "kept")}
    assert kept["english-article"]["language"] == "en"
    assert list((out / "kept").glob("*/en/*.jsonl.gz"))
    assert kept["mixed-terms"]["language"] == "vi"


def test_pii_redacted_and_counted(real_run):
    out, stats, _, _, _ = real_run
    kept = {r["id"]: r for r in read_folder(out / "kept")}
    text = kept["pii-article"]["text"]
    assert "<PHONE>" in text and "<EMAIL>" in text and "0912" not in text
    assert kept["pii-article"]["pii"] == {"email": 1, "phone": 1}
    assert stats["redactions"]["phone"] >= 1 and stats["redactions"]["email"] >= 1


def test_tiers_and_report(real_run):
    out, stats, _, _, _ = real_run
    tiers = stats["tiers"]
    assert set(tiers) == {"high", "low"}
    assert abs(tiers["high"]["vi"] - tiers["low"]["vi"]) <= max(2, 0.05 * stats["kept"])
    high = read_folder(out / "kept" / "high")
    low = read_folder(out / "kept" / "low")
    assert min(r["quality_score"] for r in high if r["language"] == "vi") >= max(
        r["quality_score"] for r in low if r["language"] == "vi"
    )
    report = (out / "report.md").read_text()
    assert "| gopher_repetition |" in report and "quality_hist.png" in report
    assert (out / "quality_hist.png").stat().st_size > 1000
