"""Spoken card data: Luhn-checked PANs in digits or words, CVVs, PII, redaction with character and audio spans."""

from __future__ import annotations

import json

import pytest

from intelligence.compliance.pci import (
    cn_id_valid,
    digit_pieces,
    find_card_numbers,
    find_cvv,
    find_pii,
    luhn_valid,
    redact_text,
    redaction_time_spans,
)
from intelligence.types import TranscriptEvent, Word


def test_luhn() -> None:
    assert luhn_valid("4539148803436467")
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4539148803436468")
    assert not luhn_valid("12ab")


def test_number_words_become_digits() -> None:
    digits = "".join(p.digits for p in digit_pieces("forty-five thirty-nine, double four, oh seven, three hundred and five"))
    assert digits == "45394407305"


@pytest.mark.parametrize("text", [
    "my card number is 4539 1488 0343 6467, thanks",
    "it's four five three nine, one four eight eight, zero three four three, six four six seven",
    "forty-five thirty-nine fourteen eighty-eight oh three four three sixty-four sixty-seven",
    "born nineteen ninety 4539 1488 0343 6467",  # a year run into the number is trimmed off
    "卡号是四五三九一四八八零三四三六四六七",
])
def test_pan_found_in_any_spoken_form(text: str) -> None:
    pans = find_card_numbers(text)
    assert [p.value for p in pans] == ["4539148803436467"]
    assert pans[0].luhn_valid


def test_pan_hard_negatives() -> None:
    assert not find_card_numbers("It's the card ending in 0366.")
    assert not find_card_numbers("the last four digits are seven three zero two")
    assert not find_card_numbers("Your dispute reference number is five five two, eight one seven.")
    assert not find_card_numbers("call me on 07911 123456")


def test_unverified_pan_needs_card_context() -> None:
    misheard = "4539 1488 0343 6468"  # one digit wrong: Luhn fails
    assert find_card_numbers(f"my card number is {misheard}")[0].luhn_valid is False
    assert not find_card_numbers(f"the tracking code is {misheard}")
    assert not find_card_numbers(f"my card number is {misheard}", allow_unverified=False)


def test_cvv_needs_keyword_and_is_not_part_of_the_pan() -> None:
    text = "my card number is 4539 1488 0343 6467, and the code on the back is three eight one."
    cvv = find_cvv(text, find_card_numbers(text))
    assert [c.value for c in cvv] == ["381"]
    assert not find_cvv("the last three digits of my phone are 381")
    assert [c.value for c in find_cvv("安全码是三八一")] == ["381"]


def test_pii() -> None:
    kinds = {s.kind for s in find_pii("it's hannah dot moore at mailbox dot com, SSN 123-45-6789, 13812345678")}
    assert kinds == {"email", "ssn", "phone"}
    assert cn_id_valid("11010519491231002X")
    assert not cn_id_valid("110105194912310021")


def test_redact_text_replaces_and_reports_original_spans() -> None:
    text = "Number 4539 1488 0343 6467, code on the back 381. Bye."
    red, spans = redact_text(text)
    assert red == "Number [PAN], code on the back [CVV]. Bye."
    assert [text[s.start : s.end] for s in spans] == ["4539 1488 0343 6467", "381"]
    red2, _ = redact_text("mail me at ann@example.com", kinds=("email",))
    assert red2 == "mail me at [EMAIL]"


def test_redaction_time_spans_follow_word_timestamps() -> None:
    text = "my card is 4539 1488 0343 6467 okay"
    words, t = [], 10.0
    for w in text.split():
        words.append(Word(" " + w, t, t + 0.4))
        t += 0.5
    ev = TranscriptEvent("s", "final", "seg", 1, "customer", 10.0, t, text, tuple(words))
    spans = redaction_time_spans(ev, pad_s=0.0)
    assert spans == [(11.5, 13.4)]


def test_dev_call_card_numbers(shared_data) -> None:
    """The two dev calls with a spoken PAN are found in both reference forms; the hard negative is not."""
    gt_dir = shared_data / "calls" / "dev" / "gt"
    for call_id, turn in (("dev_en_05", 3), ("dev_en_19", 4)):
        t = json.loads((gt_dir / f"{call_id}.json").read_text())["turns"][turn]
        for field in ("text", "text_spoken"):
            assert find_card_numbers(t[field]), (call_id, field)
    for t in json.loads((gt_dir / "dev_en_17.json").read_text())["turns"]:
        assert not find_card_numbers(t["text_spoken"]) and not find_card_numbers(t["text"])


def test_card_number_read_around_a_short_aside() -> None:
    """"5191 0115, hang on, my glasses, 2449 3900": the two halves make one Luhn-valid card number; halves that do
    not pass Luhn, or a long digression, are left alone."""
    from intelligence.compliance.pci import find_card_numbers

    found = find_card_numbers("The number is 5191 0115, hang on, my glasses, 2449 3900, and that's it.")
    assert [f.value for f in found] == ["5191011524493900"]
    assert find_card_numbers("The number is 5191 0115, hang on, my glasses, 2449 3901.") == []
    far = "My account is 5191 0115 and it was opened years ago when I moved house with the kids, then 2449 3900."
    assert find_card_numbers(far, allow_unverified=False) == []


def test_card_number_read_in_groups_around_several_asides() -> None:
    """Four groups with an aside between each make one Luhn-valid number; a lone digit inside an aside (一下, "one
    sec") is a word, and the code read after a CVV keyword is not taken into the number."""
    from intelligence.compliance.pci import find_card_numbers

    en = "It's 4539, sorry, one sec, 1488, right, 0343, and then 6467. The code on the back is 552."
    assert [f.value for f in find_card_numbers(en)] == ["4539148803436467"]
    zh = "卡号是四五三九，幺四八八，稍等一下我再看一眼，零三四三，六四六七。背面三位是五五二。"
    assert [f.value for f in find_card_numbers(zh)] == ["4539148803436467"]
    # three separate numbers of a conversation do not join into a card number unless they pass Luhn
    assert find_card_numbers("My reference is 4471 and the amount was 1250 dollars, the claim 3390.") == []


def test_cvv_keywords_skip_social_security_and_round_the_clock() -> None:
    from intelligence.compliance.pci import CVV_KEYWORDS_RE, find_cvv

    assert CVV_KEYWORDS_RE.search("the last four of your Social Security number") is None
    assert CVV_KEYWORDS_RE.search("the digits from the back of that card")
    assert find_cvv("Call the number on the back of the card, it's staffed twenty-four seven.") == []


def test_asr_spellings_of_cvv_and_a_mobile_number() -> None:
    """ASR writes CVV as "CBB"; a mobile number asked for (and repeated by ASR) joins into no card number."""
    from intelligence.compliance.pci import find_card_numbers, find_cvv

    assert [c.value for c in find_cvv("Yes, that's the one, the CBB is 752 if you need it.")] == ["752"]
    asked = "May I have your full name and the mobile number registered with us.\n"
    assert find_card_numbers(asked + "Tan Min, and the number is 91234587. 2234587. 4587.") == []
