"""The eviction policies: pure ordering of victims and admission, no I/O, a fake clock.

A contract every policy keeps (victims are candidates, free what is needed and no more than
the order requires), then the cost-aware policy's own rules: priority by cost, size and use,
inflation, measured costs, the admission gate, the bounded ghost list, decay by the clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelshelfd.policy import Candidate, CostAwarePolicy, LRUPolicy, Policy

MB = 1_000_000


def _cost_aware() -> CostAwarePolicy:
    return CostAwarePolicy(100, bandwidth=1.0, half_life=None, exponent=1.0)  # plain GDSF


def _fill(policy: Policy, items: list[tuple[int, float, float]]) -> list[Candidate]:
    """Insert ``(size, last_use, seconds)`` items k0, k1... as the tier would; their candidates."""
    cands = []
    for i, (size, t, seconds) in enumerate(items):
        key = f"k{i}"
        policy.on_request(key, size, t)
        policy.on_load(key, size, seconds, t)
        policy.on_insert(key, size, t)
        cands.append(Candidate(key, size, t))
    return cands


@pytest.mark.parametrize("make", [LRUPolicy, _cost_aware], ids=["lru", "cost-aware"])
@given(
    items=st.lists(
        st.tuples(st.integers(1, 100), st.floats(0, 1e6), st.floats(0.001, 10.0)),
        max_size=30,
    ),
    need=st.integers(0, 3000),
    held=st.sets(st.integers(0, 29)),
)
def test_contract_victims_are_candidates_and_free_what_is_needed(
    make: object, items: list[tuple[int, float, float]], need: int, held: set[int]
) -> None:
    policy: Policy = make()  # type: ignore[operator]
    cands = [c for i, c in enumerate(_fill(policy, items)) if i not in held]  # leased: not offered
    victims = policy.victims(cands, need, now=2e6)
    by_key = {c.key: c for c in cands}
    assert len(set(victims)) == len(victims)
    assert set(victims) <= set(by_key)
    freed = sum(by_key[v].size for v in victims)
    if freed < need:
        assert len(victims) == len(cands)
    else:
        # no victim could have stayed: each one is needed
        assert all(freed - by_key[v].size < need for v in victims)


def test_lru_least_recently_used_first_until_enough_is_freed() -> None:
    cands = [Candidate("a", 10, 3.0), Candidate("b", 10, 1.0), Candidate("c", 10, 2.0)]
    assert LRUPolicy().victims(cands, 15, now=9.0) == ["b", "c"]
    assert LRUPolicy().victims(cands, 10, now=9.0) == ["b"]
    assert LRUPolicy().victims(cands, 0, now=9.0) == []
    assert LRUPolicy().victims([Candidate("y", 1, 0.0), Candidate("x", 1, 0.0)], 9, 0.0) == [
        "x",
        "y",
    ]  # ties by key


def test_lru_admits_what_fits_and_what_was_used_before() -> None:
    policy = LRUPolicy()
    assert policy.admit(Candidate("a", 10, 0.0, hits=0), free=10, now=0.0)
    assert not policy.admit(Candidate("a", 11, 0.0, hits=0), free=10, now=0.0)
    assert policy.admit(Candidate("a", 11, 0.0, hits=1), free=0, now=0.0)


def test_cheap_to_reload_goes_first_then_large_then_rarely_used() -> None:
    policy = _cost_aware()
    cheap, dear = _fill(policy, [(10, 0.0, 1.0), (10, 0.0, 5.0)])
    assert policy.victims([dear, cheap], 1, now=1.0) == ["k0"]

    policy = _cost_aware()
    small, large = _fill(policy, [(10, 0.0, 2.0), (40, 0.0, 2.0)])
    assert policy.victims([small, large], 1, now=1.0) == ["k1"]  # less per byte

    policy = _cost_aware()
    rare, often = _fill(policy, [(10, 0.0, 2.0), (10, 0.0, 2.0)])
    for t in (1.0, 2.0):
        policy.on_request("k1", 10, t)
    assert policy.victims([rare, often], 1, now=3.0) == ["k0"]


def test_one_load_evicts_no_more_than_it_needs() -> None:
    policy = _cost_aware()
    # priorities 0.1, 0.2 per byte for the small ones, 0.5 for the large one
    cands = _fill(policy, [(10, 0.0, 1.0), (10, 0.0, 2.0), (30, 0.0, 15.0)])
    # greedy by priority takes k0, k1 (20 bytes), then k2: k2 alone frees the 25 needed
    assert policy.victims(cands, 25, now=1.0) == ["k2"]
    assert policy.victims([c for c in cands if c.key != "k2"], 15, now=1.0) == ["k0", "k1"]


def test_inflation_ages_images_not_used_since() -> None:
    policy = _cost_aware()
    cands = _fill(policy, [(10, 0.0, 3.0), (10, 0.0, 4.0)])
    assert policy.victims(cands, 10, now=1.0) == ["k0"]
    assert policy.inflation == pytest.approx(0.3)
    _fill_key(policy, "n", 10, 0.5, t=2.0)  # little value, but entered after L rose
    assert policy.priority("n") == pytest.approx(0.3 + 0.05)
    assert policy.priority("n") < policy.priority("k1") == pytest.approx(0.4)
    policy.on_request("n", 10, 4.0)
    policy.on_request("n", 10, 5.0)  # 3 uses now: 0.3 + 0.15
    assert policy.priority("n") == pytest.approx(0.45)
    assert policy.victims([cands[1], Candidate("n", 10, 5.0)], 10, now=6.0) == ["k1"]


def _fill_key(policy: CostAwarePolicy, key: str, size: int, seconds: float, *, t: float) -> None:
    policy.on_request(key, size, t)
    policy.on_load(key, size, seconds, t)
    policy.on_insert(key, size, t)


def test_the_exponent_weighs_worth_against_age() -> None:
    policy = CostAwarePolicy(100, bandwidth=1.0, half_life=None)  # exponent 2 by default
    cands = _fill(policy, [(10, 0.0, 3.0), (10, 0.0, 5.0)])
    assert policy.priority("k1") == pytest.approx(0.25)
    assert policy.victims(cands, 10, now=1.0) == ["k0"]
    assert policy.inflation == pytest.approx(0.09)
    _fill_key(policy, "n", 10, 4.0, t=2.0)
    assert policy.priority("n") == pytest.approx(0.09 + 0.16)


def test_evicted_otherwise_leaves_without_inflation_and_is_remembered() -> None:
    policy = _cost_aware()
    _fill(policy, [(10, 0.0, 3.0)])
    policy.on_request("k0", 10, 1.0)
    policy.on_evict("k0", now=2.0)
    assert policy.inflation == 0.0 and len(policy) == 0
    assert policy.uses("k0", now=2.0) == 2  # a ghost now
    assert policy.cost("k0", 10) == pytest.approx(3.0)


def test_cost_is_measured_per_image_smoothed_and_the_size_over_bandwidth_before() -> None:
    policy = CostAwarePolicy(1000 * MB, bandwidth=100 * MB, smoothing=0.5, half_life=None)
    assert policy.cost("a", 50 * MB) == pytest.approx(0.5)  # no measurement: the default
    policy.on_load("a", 50 * MB, 0.25, now=0.0)  # 200 MB/s measured
    assert policy.cost("a", 50 * MB) == pytest.approx(0.25)
    # bytes and seconds smoothed apart: (100 + 50) / 2 MB over (1 + 0.25) / 2 s
    assert policy.bandwidth == pytest.approx(120 * MB)
    assert policy.cost("b", 300 * MB) == pytest.approx(2.5)  # the tier's measured bandwidth
    policy.on_insert("a", 50 * MB, now=0.0)
    policy.on_load("a", 50 * MB, 0.75, now=1.0)
    assert policy.cost("a", 50 * MB) == pytest.approx(0.5)


def test_large_image_waits_for_its_second_use_small_and_fitting_ones_enter() -> None:
    policy = CostAwarePolicy(100, gate=0.2, half_life=3600.0)
    large, small = Candidate("L", 30, 0.0), Candidate("s", 10, 0.0)
    policy.on_request("L", 30, 0.0)
    policy.on_request("s", 10, 0.0)
    assert not policy.admit(large, free=0, now=0.0)  # first use: the page cache serves it
    assert policy.admit(large, free=30, now=0.0)  # room to spare: nothing evicted
    assert policy.admit(small, free=0, now=0.0)
    assert not policy.admit(Candidate("huge", 101, 0.0), free=100, now=0.0)
    policy.on_request("L", 30, 60.0)
    assert policy.admit(large, free=0, now=60.0)  # proved itself
    policy.on_request("M", 30, 0.0)
    policy.on_request("M", 30, 3 * 3600.0)  # the first use is mostly forgotten
    assert not policy.admit(Candidate("M", 30, 0.0), free=0, now=3 * 3600.0)


def test_a_large_image_must_outrank_the_victims_it_would_need() -> None:
    policy = CostAwarePolicy(100, gate=0.2, bandwidth=1.0, half_life=None)
    _fill(policy, [(30, 0.0, 30.0), (30, 0.0, 3.0), (30, 0.0, 30.0)])  # priorities 1, 0.1, 1
    for t in (1.0, 2.0):
        policy.on_request("big", 40, t)
        policy.on_request("dear", 40, t)
    policy.on_load("big", 40, 8.0, 2.0)  # 2 uses * 8 s / 40 B = 0.4
    policy.on_load("dear", 40, 40.0, 2.0)  # 2 uses * 40 s / 40 B = 2
    assert policy.admit(Candidate("big", 40, 2.0), free=10, now=2.0)  # evicts the 0.1 one
    assert not policy.admit(Candidate("big", 40, 2.0), free=0, now=2.0)  # and a 1 one: no
    assert policy.admit(Candidate("dear", 40, 2.0), free=0, now=2.0)
    assert len(policy) == 3  # asking evicted nothing


def test_uses_halve_every_half_life_of_the_injected_clock() -> None:
    policy = CostAwarePolicy(100, half_life=10.0)
    for _ in range(4):
        policy.on_request("a", 10, 0.0)
    assert policy.uses("a", now=0.0) == 4
    assert policy.uses("a", now=20.0) == pytest.approx(1.0)
    assert policy.uses("never", now=20.0) == 0


def test_the_ghost_list_is_bounded_least_recently_used_forgotten_first() -> None:
    policy = CostAwarePolicy(100, max_ghosts=3)
    for i in range(5):
        policy.on_request(f"g{i}", 10, float(i))
    assert [policy.uses(f"g{i}", 5.0) > 0 for i in range(5)] == [False, False, True, True, True]


def test_adopted_copies_go_after_known_ones_least_recently_used_first() -> None:
    policy = _cost_aware()
    (known,) = _fill(policy, [(10, 5.0, 1.0)])
    adopted = [Candidate("old", 10, 1.0), Candidate("older", 10, 0.0)]
    assert policy.victims([*adopted, known], 25, now=9.0) == ["k0", "older", "old"]


def test_the_heap_stays_bounded_under_many_hits() -> None:
    policy = _cost_aware()
    _fill(policy, [(10, 0.0, 1.0), (10, 0.0, 1.0)])
    for t in range(1000):
        policy.on_request("k0", 10, float(t))
    assert len(policy._heap) <= 2 * len(policy) + 64


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="expected budget > 0"):
        CostAwarePolicy(0)
