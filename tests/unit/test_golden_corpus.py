"""The golden corpus: the same inputs give byte-identical outputs and final states.

The fingerprints in tests/golden_corpus.json were computed on the engine before issue 22's
speed work; an engine change that is meant to change no output must leave them all equal.
"""

from __future__ import annotations

import pytest

from tests.golden_corpus import committed, entries, fingerprint

CORPUS = {entry.name: entry for entry in entries()}


def test_the_committed_fingerprints_cover_exactly_the_corpus() -> None:
    assert sorted(committed()) == sorted(CORPUS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_outputs_states_and_deadlines_match_the_committed_fingerprint(name: str) -> None:
    # Given one input of the corpus and its committed fingerprint
    expected = committed()[name]
    # When it runs through the in-process pipeline
    got = fingerprint(CORPUS[name])
    # Then every output topic, every final state and every deadline hashes the same
    assert got == expected
