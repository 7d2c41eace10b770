"""Language ID: vi / en / other with py3langid's bundled model, offline."""

from __future__ import annotations

import gzip
import json
import socket

import pytest

from vinaforge.text import langid

SENTENCES = {
    "vi": [
        "Hà Nội là thủ đô của nước Cộng hòa Xã hội Chủ nghĩa Việt Nam.",
        "Hôm nay trời mưa nên chúng tôi ở nhà đọc sách.",
        "Tieng Viet khong dau van la tieng Viet, du kho doc hon.",
    ],
    "en": [
        "The committee will publish its final report next week.",
        "She walked to the station because the buses were not running.",
    ],
    "other": [
        "Der schnelle braune Fuchs springt über den faulen Hund.",
        "Le petit chat dort sur le canapé depuis ce matin.",
        "El perro come su comida en la cocina todos los días.",
        "我们今天下午去公园散步，天气很好。",
        "Сегодня мы пошли в парк и долго гуляли.",
        "วันนี้อากาศดีมากและเราไปเดินเล่นที่สวน",
    ],
}


@pytest.mark.parametrize(("label", "text"), [(k, t) for k, ts in SENTENCES.items() for t in ts])
def test_identifies_hand_written_sentences(label: str, text: str) -> None:
    got, score = langid.identify(text)
    assert got == label
    assert 0.0 < score <= 1.0


def test_empty_and_letterless_text() -> None:
    assert langid.identify("") == ("other", 0.0)
    assert langid.identify("12345 !!! ---") == ("other", 0.0)
    assert langid.identify_many(["Xin chào các bạn thân mến", ""])[1] == ("other", 0.0)


def test_works_with_the_network_blocked(monkeypatch) -> None:
    """The model ships inside the py3langid wheel: loading and using it opens no socket."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted during language ID")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(langid, "_identifier", None)  # force a fresh model load
    assert langid.identify("The weather in Hanoi is lovely in autumn.")[0] == "en"
    assert langid.identify("Mùa thu Hà Nội rất đẹp và dễ chịu.")[0] == "vi"
    assert langid._identifier is not None


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("side", ["vi", "en"])
def test_evbnews_accuracy(shared_data, side: str) -> None:
    """At least 99% correct on each side of EVBNews, sentences of 30 characters or more."""
    path = shared_data / "parallel" / "evbnews_v1_en_vi.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        texts = [t for line in fh if len(t := json.loads(line)[side]) >= 30]
    assert len(texts) > 40_000
    correct = sum(langid.identify(t)[0] == side for t in texts)
    assert correct / len(texts) >= 0.99, correct / len(texts)
