"""Protect-and-restore keeps code, URLs, numbers, placeholders and Markdown structure exactly."""

from vinaforge.factory.protect import Unit, assemble, chunk_text, restore, skeleton, split_unit

DOC = """## Setup guide

1. Install it with `pip install foo` and open https://example.com/docs.
- Email admin@example.org if it takes more than 5 km or 20%.

```python
print("hello {name}")
```

| Name | Value |
|---|---|
| Speed | 10 km/h |

Hello {name}, you have %s new messages and %(count)d alerts.
"""


def test_round_trip_and_what_is_protected():
    sk = skeleton(DOC)
    assert assemble(sk, [restore(u, u.text)[0] for u in sk.units]) == DOC
    prose = " ".join(u.text for u in sk.units)
    for kept in (
        "pip install",
        "https://",
        "admin@",
        "5 km",
        "20%",
        "{name}",
        "%s",
        "%(count)d",
        "print(",
        "|",
        "##",
    ):
        assert kept not in prose, kept
    assert "Setup guide" in prose and "Speed" in prose
    assert {'```python\nprint("hello {name}")\n```\n', "10 km/h", "{name}", "%s"} <= set(sk.protected)


def test_lost_or_repeated_markers_are_reasons():
    u = Unit("Open ⟦0⟧ and run ⟦1⟧.", ["https://x.org/a", "`make`"])
    assert restore(u, "Mở ⟦0⟧ rồi chạy ⟦1⟧.")[0] == "Mở https://x.org/a rồi chạy `make`."
    text, why = restore(u, "Mở ⟦0⟧ rồi chạy lệnh.")
    assert text is None and "lost '`make`'" in why
    assert "repeated" in restore(u, "⟦0⟧ ⟦0⟧ ⟦1⟧")[1]


def test_long_text_is_chunked_at_sentence_boundaries():
    text = " ".join(f"Sentence number {i} ends here." for i in range(40))
    chunks = chunk_text(text, 200)
    assert len(chunks) > 1 and all(len(c) <= 200 for c in chunks)
    assert " ".join(chunks) == text and all(c.endswith("here.") for c in chunks)
    u = Unit(" ".join(f"Visit ⟦{i}⟧ today." for i in range(30)), [f"https://e.com/{i}" for i in range(30)])
    parts = split_unit(u, 100)
    assert len(parts) > 1 and sum(len(p.spans) for p in parts) == 30
    assert " ".join(restore(p, p.text)[0] for p in parts) == restore(u, u.text)[0]
