"""Near-copies of one story group together; different stories on one topic stay apart."""

from __future__ import annotations

import pytest

from ingest.dedupe import StoryGrouper, group_texts, shingles

_WIRE = [
    "Firefighters in the hills above Marbella fought a wildfire through the night on "
    "Thursday as strong winds pushed the flames towards two villages.",
    "About 2,000 residents were moved to sports halls in the town, the regional emergency "
    "service said, and a motorway was closed for several hours.",
    "Twelve aircraft joined the effort at dawn, dropping water collected from the sea, "
    "while crews on the ground cut firebreaks along the ridge.",
    "The cause of the fire is under investigation; a spokesman said arson could not be "
    "ruled out after three separate outbreaks were reported within an hour.",
    "Temperatures in the region have passed 40 degrees this week, and the state weather "
    "agency has warned of an extreme risk of fire until Sunday.",
]
_OTHER_FIRE = [
    "A fire at a recycling plant near Valencia sent a column of black smoke over the city "
    "on Monday, and residents were told to keep their windows closed.",
    "No one was hurt, the fire brigade said, and the blaze was under control by evening.",
    "The plant had been fined last year for storing too much plastic on its site, local "
    "newspapers reported, and the council said it would review its licence.",
]


def test_a_wire_copy_with_another_headline_and_a_trimmed_paragraph_joins_the_story() -> None:
    original = "\n".join(_WIRE)
    outlet_copy = "Wildfire forces thousands from homes near Marbella\n" + "\n".join(_WIRE[:-1])

    stories = group_texts([("agency", original), ("outlet", outlet_copy)])

    assert stories == {"agency": ["agency", "outlet"]}


def test_an_update_with_an_added_paragraph_joins_and_another_fire_story_does_not() -> None:
    grouper = StoryGrouper()
    grouper.add("first", "\n".join(_WIRE[:3]))
    update = grouper.add(
        "update", "\n".join([*_WIRE[:3], "By Friday morning the fire was contained."])
    )
    other = grouper.add("valencia", "\n".join(_OTHER_FIRE))

    assert update.story == "first"
    assert update.similar_to == "first"
    assert 0.5 <= update.similarity < 1.0
    assert other.story == "valencia"
    assert other.similar_to is None


def test_a_story_rewritten_from_scratch_is_not_a_copy() -> None:
    rewrite = (
        "Thousands fled villages above Marbella as a wind-driven blaze spread overnight; "
        "planes scooped seawater at first light and police are looking into arson."
    )

    assert group_texts([("a", "\n".join(_WIRE)), ("b", rewrite)]) == {"a": ["a"], "b": ["b"]}


def test_an_article_added_again_is_placed_with_its_new_text() -> None:
    grouper = StoryGrouper()
    grouper.add("wire", "\n".join(_WIRE))
    grouper.add("page", "\n".join(_WIRE))
    assert grouper.story_of("page") == "wire"

    grouper.add("page", "\n".join(_OTHER_FIRE))

    assert grouper.story_of("page") == "page"
    assert grouper.stories() == {"wire": ["wire"], "page": ["page"]}


def test_shingles_ignore_case_and_punctuation() -> None:
    assert shingles("The fire, the WIND!", 2) == {"the fire", "fire the", "the wind"}


def test_exact_copies_are_placed_without_comparing_each_with_every_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A library of 100,000 empty bodies took minutes to open: each one was compared
    with every one before it. An exact copy now joins the first's story at once."""
    from datasketch import LeanMinHash

    compared = 0
    jaccard = LeanMinHash.jaccard

    def counting(self: LeanMinHash, other: LeanMinHash) -> float:
        nonlocal compared
        compared += 1
        return float(jaccard(self, other))

    monkeypatch.setattr(LeanMinHash, "jaccard", counting)
    grouper = StoryGrouper()
    matches = [grouper.add(f"a{n:04d}", "") for n in range(1500)]
    assert {m.story for m in matches} == {"a0000"}
    assert compared < 10
    # The first copy removed: the story keeps its id, the next copy is the one matched.
    grouper.remove("a0000")
    assert grouper.add("b", "").similar_to == "a0001"
