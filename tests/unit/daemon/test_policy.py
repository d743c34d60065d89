"""The eviction policy: pure ordering of victims, no I/O, no clock of its own."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from modelshelfd.policy import Candidate, LRUPolicy


def test_least_recently_used_first_until_enough_is_freed() -> None:
    cands = [Candidate("a", 10, 3.0), Candidate("b", 10, 1.0), Candidate("c", 10, 2.0)]
    assert LRUPolicy().victims(cands, 15, now=9.0) == ["b", "c"]
    assert LRUPolicy().victims(cands, 10, now=9.0) == ["b"]
    assert LRUPolicy().victims(cands, 0, now=9.0) == []


def test_not_enough_candidates_returns_them_all() -> None:
    cands = [Candidate("a", 1, 0.0), Candidate("b", 1, 0.0)]
    assert LRUPolicy().victims(cands, 100, now=0.0) == ["a", "b"]  # ties by key


@given(
    st.lists(
        st.tuples(st.integers(1, 100), st.floats(0, 1e6, allow_nan=False)),
        max_size=30,
    ),
    st.integers(0, 3000),
)
def test_properties(items: list[tuple[int, float]], need: int) -> None:
    cands = [Candidate(f"k{i}", size, t) for i, (size, t) in enumerate(items)]
    victims = LRUPolicy().victims(cands, need, now=0.0)
    by_key = {c.key: c for c in cands}
    freed = sum(by_key[v].size for v in victims)
    assert len(set(victims)) == len(victims)
    if freed < need:
        assert len(victims) == len(cands)
    else:
        assert freed - by_key[victims[-1]].size < need if victims else need == 0
    chosen = [by_key[v].last_use for v in victims]
    assert chosen == sorted(chosen)
    rest = [c.last_use for c in cands if c.key not in set(victims)]
    assert not chosen or not rest or max(chosen) <= min(rest)


def test_lru_admits_what_fits_and_what_was_used_before() -> None:
    policy = LRUPolicy()
    assert policy.admit(Candidate("a", 10, 0.0, hits=0), free=10, now=0.0)
    assert not policy.admit(Candidate("a", 11, 0.0, hits=0), free=10, now=0.0)
    assert policy.admit(Candidate("a", 11, 0.0, hits=1), free=0, now=0.0)
