"""Risk levels said as numbers on a scale: the level read against the scale, and whose level it is."""

from __future__ import annotations

import pytest

from intelligence.compliance.risk_scale import scale_mentions


def _read(text: str) -> list[tuple[str, float, str]]:
    t = text.lower()
    return [(m.role, m.level, t[m.start : m.end]) for m in scale_mentions(t)]


@pytest.mark.parametrize(("text", "want"), [
    # profile then product, each on its own scale size
    ("Your attitude to risk came out at two out of six, and the Pathfinder fund is a five out of six.",
     [("profile", 1.8), ("product", 4.2)]),
    # the turn names the scale once; "band five" is read on it
    ("On our scale of seven your profile is band three, and this portfolio sits at band five.",
     [("profile", 2.33), ("product", 3.67)]),
    # a lone rating of a product
    ("The Horizon note is classed as level four, which is near the top of our range of risk.",
     [("product", 4.0)]),
    # "that's a nine" only where the scale is named
    ("Your risk questionnaire had you at a two out of ten, and the option you picked, that's a nine.",
     [("profile", 1.44), ("product", 4.56)]),
    ("Your risk profile is low, and the tracker has a level of charges that's low too.", []),
    # "of one to seven" names the scale (not a scale of one)
    ("Your attitude to risk is balanced, and this portfolio is rated four on our scale of one to seven.",
     [("product", 3.0)]),
])
def test_levels_and_roles(text: str, want: list[tuple[str, float]]) -> None:
    got = _read(text)
    assert [(role, level) for role, level, _ in got] == want, got


@pytest.mark.parametrize("text", [
    "Two out of three payments were late last year.",  # no talk of risk
    "Nine out of ten customers in your risk band renew.",  # people, not a level
    "It returned six percent, a four percent risk premium on our scale of charges.",
])
def test_numbers_that_are_not_levels(text: str) -> None:
    assert _read(text) == []


def test_a_scale_nobody_sized_is_marked() -> None:
    (said,) = scale_mentions("the fund is rated four on our scale, and your profile is balanced.")
    assert said.role == "product" and said.level == 4.0 and not said.scale_stated
    (sized,) = scale_mentions("the fund is rated four on our scale of seven.")
    assert sized.scale_stated and sized.level == 3.0
