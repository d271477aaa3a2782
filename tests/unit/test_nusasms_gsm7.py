"""The GSM 03.38 check that decides `unicode=True`."""

from __future__ import annotations

import pytest

from worker.nusasms.gsm7 import GSM7_BASIC, GSM7_EXTENSION, is_gsm7, needs_unicode


def test_tables_have_the_standard_sizes() -> None:
    # 128 code points minus the escape; 9 printable extension characters plus form feed.
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert "\x1b" not in GSM7_BASIC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Kode OTP Anda 123456. Jangan berikan kepada siapa pun.",
        "Harga: Rp 50.000 @toko #promo!",
        "Total €5 [diskon] {a|b} ~ ^ \\",
        "Baris satu\nBaris dua\r\n",
        "ÄÖÑÜ äöñü àèéùìò Ç ΔΦΓΛΩΠΨΣΘΞ ¡¿ £¥§¤",
    ],
)
def test_gsm7_texts(text: str) -> None:
    assert is_gsm7(text)
    assert not needs_unicode(text)


@pytest.mark.parametrize(
    "text",
    [
        "Terima kasih 🙏",
        "ç",  # only the capital Ç is in the table
        "naïve",
        "tab\there",
        "“smart quotes”",
        "日本語",
        "Ć",
        "`backtick`",
    ],
)
def test_texts_that_need_ucs2(text: str) -> None:
    assert needs_unicode(text)
