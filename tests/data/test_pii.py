"""PII redaction: every planted item is redacted, ordinary numbers are left alone.

The examples are generated from our own sentence templates with a fixed seed: phones with and
without +84 (mobile, landline, old 11-digit mobiles, several separators), 9- and 12-digit
citizen IDs announced by an ID keyword, e-mails, IPv4/IPv6 addresses and Luhn-valid cards.
"""

from __future__ import annotations

import random
import re

import pytest

from vinaforge.data.pii import PLACEHOLDERS, find_pii, luhn_ok, redact_pii

RNG = random.Random(20240601)

MOBILE_PREFIXES = [
    "32",
    "33",
    "34",
    "35",
    "36",
    "37",
    "38",
    "39",
    "56",
    "58",
    "70",
    "76",
    "77",
    "78",
    "79",
    "81",
    "82",
    "83",
    "84",
    "85",
    "86",
    "88",
    "89",
    "90",
    "91",
    "93",
    "94",
    "96",
    "97",
    "98",
    "99",
]
AREA_CODES = ["24", "28", "236", "225", "251", "274", "292", "234", "203", "297"]
CONTEXTS = [
    "Liên hệ {x} để được tư vấn.",
    "Mọi thắc mắc xin gọi số {x} (gặp chị Lan).",
    "SĐT: {x}",
    "Hotline hỗ trợ khách hàng {x}, làm việc cả thứ bảy.",
    "Anh Minh để lại số điện thoại {x} cho ban tổ chức.",
    "Call me at {x} if anything changes.",
]


def _digits(n: int) -> str:
    return "".join(RNG.choice("0123456789") for _ in range(n))


def _group(digits: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for s in sizes:
        out.append(digits[i : i + s])
        i += s
    if i < len(digits):
        out.append(digits[i:])
    return sep.join(out)


def mobile() -> str:
    national = RNG.choice(MOBILE_PREFIXES) + _digits(7)  # 9 digits after the leading 0
    style = RNG.randrange(8)
    if style == 0:
        return "0" + national
    if style == 1:
        return _group("0" + national, [4, 3, 3], RNG.choice([" ", ".", "-"]))
    if style == 2:
        return _group("0" + national, [3, 3, 4], RNG.choice([" ", ".", "-"]))
    if style == 3:
        return "+84" + national
    if style == 4:
        return "+84 " + _group(national, [3, 3, 3], " ")
    if style == 5:
        return "(+84) " + _group(national, [2, 3, 4], ".")
    if style == 6:
        return "84" + national
    return "+84-" + _group(national, [3, 3, 3], "-")


def landline() -> str:
    area = RNG.choice(AREA_CODES)
    local = _digits(10 - len(area))  # 02x(x) + subscriber = 11 digits with the leading 0
    style = RNG.randrange(4)
    if style == 0:
        return f"0{area} {_group(local, [4, 4], ' ')}".strip()
    if style == 1:
        return f"(0{area}) {local}"
    if style == 2:
        return f"+84 {area} {_group(local, [4, 4], ' ')}".strip()
    return f"0{area}.{_group(local, [4, 4], '.')}".strip(".")


def old_mobile() -> str:
    return RNG.choice(["0162", "0165", "0168", "0123", "0188"]) + _digits(7)


def citizen_id() -> tuple[str, str]:
    if RNG.random() < 0.5:
        number = "0" + RNG.choice(["01", "79", "48", "31", "92"]) + _digits(9)  # CCCD: 12 digits
        keyword = RNG.choice(["CCCD số", "số căn cước công dân", "Căn cước:", "số định danh cá nhân"])
    else:
        number = _digits(9)  # CMND: 9 digits
        keyword = RNG.choice(["CMND số", "số CMND:", "chứng minh nhân dân số", "CMT"])
    if RNG.random() < 0.3:
        number = _group(number, [3, 3, 3], RNG.choice([" ", "."]))
    sentence = RNG.choice(
        [
            "Ông Nguyễn Văn A, {k} {x}, cấp ngày 12/3/2015 tại Hà Nội.",
            "Người nhận: Trần Thị B ({k} {x}).",
            "Vui lòng cung cấp {k} {x} khi làm thủ tục.",
        ]
    )
    return sentence.format(k=keyword, x=number), number


def email() -> str:
    user = RNG.choice(["nguyenvana", "lan.tran", "hotro", "minh_le92", "info+news", "a.b.c"])
    domain = RNG.choice(["gmail.com", "yahoo.com.vn", "vnexpress.net", "example.edu.vn", "mail.co"])
    return f"{user}{RNG.randrange(100)}@{domain}"


def ipv4() -> str:
    return ".".join(str(RNG.randrange(1, 255)) for _ in range(4))


def card() -> str:
    prefix = RNG.choice(["4", "51", "55", "9704", "2221", "3530"])
    body = prefix + _digits(15 - len(prefix))
    check = next(str(d) for d in range(10) if luhn_ok(body + str(d)))
    number = body + check
    return _group(number, [4, 4, 4, 4], " ") if RNG.random() < 0.5 else number


def planted_examples() -> list[tuple[str, str, str]]:
    """(text, planted item, type): at least 200, all kinds mixed."""
    out = []
    for _ in range(70):
        x = mobile()
        out.append((RNG.choice(CONTEXTS).format(x=x), x, "phone"))
    for _ in range(30):
        x = landline()
        out.append((RNG.choice(CONTEXTS).format(x=x), x, "phone"))
    for _ in range(10):
        x = old_mobile()
        out.append((RNG.choice(CONTEXTS).format(x=x), x, "phone"))
    for _ in range(40):
        text, x = citizen_id()
        out.append((text, x, "id_number"))
    for _ in range(25):
        x = email()
        out.append((f"Gửi hồ sơ về địa chỉ {x} trước ngày 30/6.", x, "email"))
    for _ in range(15):
        x = ipv4()
        out.append((f"Máy chủ {x} bị tấn công từ đêm qua.", x, "ip"))
    out.append(
        (
            "Địa chỉ IPv6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 đã bị chặn.",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "ip",
        )
    )
    for _ in range(20):
        x = card()
        out.append((f"Thanh toán bằng thẻ {x} đã bị từ chối.", x, "card"))
    return out


NEGATIVES = [
    "Năm 2023, GDP tăng 5,05% so với năm 2022.",
    "Giá xe là 1.250.000.000 đồng, tương đương 52.000 USD.",
    "Căn hộ được rao bán với giá 3.200.000.000đ.",
    "Theo Điều 123 Bộ luật Dân sự 2015, giao dịch dân sự vô hiệu.",
    "Luật số 91/2015/QH13 được Quốc hội thông qua ngày 24/11/2015.",
    "Nghị định 100/2019/NĐ-CP quy định xử phạt vi phạm giao thông.",
    "Khoản 2 Điều 5 Thông tư 01/2021/TT-BGDĐT có hiệu lực từ 1/3/2021.",
    "Dân số Việt Nam năm 2023 khoảng 100.300.000 người.",
    "Sân vận động có sức chứa 40.192 chỗ ngồi, khánh thành năm 2003.",
    "Kết quả xổ số: 123456789 và 987654321 là hai vé trúng giải.",
    "Mã số thuế doanh nghiệp: 0101234567 (không phải số điện thoại).",
    "Tổng kim ngạch xuất khẩu đạt 371,85 tỷ USD trong năm 2022.",
    "Các năm 2016 2017 2018 2019 đều tăng trưởng dương.",
    "Phiên bản 3.11 của Python ra mắt vào tháng 10 năm 2022.",
    "Tỷ số trận đấu là 3-1, khán giả: 25 000 người.",
    "Chiều cao 1,66 m, cân nặng 52 kg, số đo 86-60-90.",
    "Hotline miễn phí 1800 1234 và tổng đài 1900 6789.",
    "Toạ độ 21.0285, 105.8542 là trung tâm Hà Nội.",
]


def test_at_least_200_varied_examples():
    ex = planted_examples()
    assert len(ex) >= 200
    assert {t for _, _, t in ex} == {"phone", "id_number", "email", "ip", "card"}


@pytest.mark.parametrize("text,item,kind", planted_examples())
def test_planted_item_is_redacted(text, item, kind):
    out, counts = redact_pii(text)
    assert item not in out, out
    assert PLACEHOLDERS[kind] in out, out
    assert counts[kind] >= 1
    # nothing else in the sentence was touched
    assert out.replace(PLACEHOLDERS[kind], "") == text.replace(item, "", 1)


@pytest.mark.parametrize("text", NEGATIVES)
def test_ordinary_numbers_are_not_redacted(text):
    out, counts = redact_pii(text)
    assert out == text, (out, counts)
    assert not counts


def test_counts_per_type_and_several_items():
    text = "Gọi 0912 345 678 hoặc email an.nguyen@gmail.com; IP 10.0.0.7; gọi lại 0987654321."
    out, counts = redact_pii(text)
    assert counts == {"phone": 2, "email": 1, "ip": 1}
    assert out == "Gọi <PHONE> hoặc email <EMAIL>; IP <IP>; gọi lại <PHONE>."


def test_nine_digits_without_id_keyword_are_kept():
    assert find_pii("Mã đơn hàng 123456789 đã được giao.") == []
    assert find_pii("Số CMND: 123456789.")[0][2] == "id_number"


def test_types_can_be_restricted():
    text = "Email a@b.vn, gọi 0912345678."
    out, counts = redact_pii(text, ["email"])
    assert out == "Email <EMAIL>, gọi 0912345678."
    assert counts == {"email": 1}


def test_luhn():
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    # a Luhn-invalid 16-digit number in card format is not a card
    assert "card" not in {k for _, _, k in find_pii("Số 4111 1111 1111 1112 không hợp lệ.")}
    assert re.search(r"<CARD>", redact_pii("Thẻ 4111-1111-1111-1111.")[0])
