"""The eviction policies: pure ordering of victims and admission, no I/O, a fake clock.

A contract every policy keeps (victims are candidates, free what is needed and no more than
the order requires), then the cost-aware policy's own rules: worth by cost, size and the
expected wait for the next use (from each image's inter-arrival times: bursty ones kept through
their burst, regular ones until they are due), measured costs, the admission gate and the
ghost list, all by the injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelshelfd.policy import Candidate, CostAwarePolicy, LRUPolicy, Policy, _residual

MB = 1_000_000


def _cost_aware() -> CostAwarePolicy:
    return CostAwarePolicy(100, bandwidth=1.0)


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


def _use(policy: Policy, key: str, size: int, times: list[float]) -> None:
    for t in times:
        policy.on_request(key, size, t)


def test_cheap_to_reload_goes_first_then_large_then_rarely_used() -> None:
    policy = _cost_aware()
    cheap, dear = _fill(policy, [(10, 0.0, 1.0), (10, 0.0, 5.0)])
    assert policy.victims([dear, cheap], 1, now=1.0) == ["k0"]

    policy = _cost_aware()
    small, large = _fill(policy, [(10, 0.0, 2.0), (40, 0.0, 2.0)])
    assert policy.victims([small, large], 1, now=1.0) == ["k1"]  # less per byte

    policy = _cost_aware()
    rare, often = _fill(policy, [(10, 0.0, 2.0), (10, 0.0, 2.0)])
    _use(policy, "k1", 10, [1.0, 2.0])
    assert policy.victims([rare, often], 1, now=3.0) == ["k0"]


def test_one_load_evicts_no_more_than_it_needs() -> None:
    policy = _cost_aware()
    # worth per byte 0.1, 0.2 for the small ones, 0.5 for the large one (same waits)
    cands = _fill(policy, [(10, 0.0, 1.0), (10, 0.0, 2.0), (30, 0.0, 15.0)])
    # by worth k0, k1 (20 bytes), then k2: k2 alone frees the 25 needed
    assert policy.victims(cands, 25, now=1.0) == ["k2"]
    assert policy.victims([c for c in cands if c.key != "k2"], 15, now=1.0) == ["k0", "k1"]


def test_the_residual_life_of_bursty_regular_and_random_gaps() -> None:
    # random (exponential) gaps: the wait does not depend on the age
    assert _residual(100.0, 1.0, 0.0) == pytest.approx(100.0)
    assert _residual(100.0, 1.0, 500.0) == pytest.approx(100.0)
    # regular: due at the mean, then soon
    assert _residual(100.0, 0.04, 30.0) == pytest.approx(70.0)
    assert _residual(100.0, 0.04, 300.0) == pytest.approx(4.0)
    # bursty: right after a use, a short wait (inside the burst); idle, the long phase's
    waits = [_residual(100.0, 16.0, age) for age in (0.0, 10.0, 100.0, 1000.0, 1e6)]
    assert waits == sorted(waits) and waits[0] < 100.0 < waits[-1]
    assert waits[0] == pytest.approx(100.0, rel=0.01)  # at age 0, the mean
    assert waits[-1] == pytest.approx(100.0 / (1 - (1 + (15 / 17) ** 0.5) / 2) / 2)


def test_a_regular_image_is_kept_until_it_is_due_a_just_used_one_goes() -> None:
    """What a frequency count cannot know: two images used every 100 s, one of them just now
    and the other 90 s ago. GDSF keeps the one just used; the next use is the other's."""
    policy = CostAwarePolicy(100, bandwidth=1.0, idle_weight=0.0)
    _use(policy, "due", 10, [0.0, 100.0, 200.0, 300.0])
    _use(policy, "just", 10, [90.0, 190.0, 290.0, 390.0])
    for key in ("due", "just"):
        policy.on_load(key, 10, 1.0, 390.0)
        policy.on_insert(key, 10, 390.0)
    assert policy.wait("due", 390.0) == pytest.approx(10.0)
    assert policy.wait("just", 390.0) == pytest.approx(100.0)
    cands = [Candidate("due", 10, 300.0), Candidate("just", 10, 390.0)]
    assert policy.victims(cands, 1, now=390.0) == ["just"]


def test_a_bursty_image_is_kept_through_its_burst_and_let_go_after() -> None:
    """Bursts of ten uses 1 s apart every 1000 s (a mean gap of 100 s), against an image used
    every 200 s: inside a burst the bursty one stays, once its burst is over it goes first."""
    policy = CostAwarePolicy(100, bandwidth=1.0, idle_weight=0.0, gap_smoothing=0.05)
    times = [b * 1000.0 + i for b in range(4) for i in range(10)]
    _use(policy, "bursty", 10, times)
    _use(policy, "steady", 10, [200.0 * i for i in range(16)])  # up to 3000
    for key in ("bursty", "steady"):
        policy.on_load(key, 10, 1.0, 0.0)
        policy.on_insert(key, 10, 0.0)
    last = times[-1]  # 3009
    cands = [Candidate("bursty", 10, last), Candidate("steady", 10, 3000.0)]
    assert policy.wait("bursty", last + 0.5) < policy.wait("steady", last + 0.5)
    assert policy.victims(cands, 1, now=last + 0.5) == ["steady"]  # mid-burst
    policy.on_insert("steady", 10, last)
    assert policy.wait("bursty", last + 200.0) > 5 * policy.wait("bursty", last + 0.5)
    assert policy.victims(cands, 1, now=last + 200.0) == ["bursty"]  # the burst is over


def test_an_image_idle_beyond_its_history_waits_longer() -> None:
    policy = CostAwarePolicy(100, idle_weight=0.5)
    _use(policy, "a", 10, [0.0, 10.0, 20.0, 30.0])
    assert policy.wait("a", 40.0) == pytest.approx(10.0 * 0.0 + 0.5 * 10.0)  # due, and regular
    assert policy.wait("a", 1030.0) == pytest.approx(0.5 * 1000.0)
    assert policy.wait("never", 0.0) == float("inf")


def test_evicted_otherwise_leaves_and_is_remembered() -> None:
    policy = _cost_aware()
    _fill(policy, [(10, 0.0, 3.0)])
    policy.on_request("k0", 10, 1.0)
    policy.on_evict("k0", now=2.0)
    assert len(policy) == 0 and policy.priority("k0", 2.0) is None
    assert policy.uses("k0", now=2.0) == 2  # a ghost now
    assert policy.cost("k0", 10) == pytest.approx(3.0)


def test_a_load_before_any_use_is_remembered_then_counted_from_the_first_use() -> None:
    policy = CostAwarePolicy(100, bandwidth=1.0)
    policy.on_load("p", 10, 2.0, now=0.0)  # a prefetch: loaded, never used
    policy.on_insert("p", 10, now=0.0)
    assert policy.uses("p", 0.0) == 0 and policy.priority("p", 0.0) is not None
    policy.on_request("p", 10, 50.0)
    assert policy.uses("p", 50.0) == 1 and policy.cost("p", 10) == pytest.approx(2.0)
    policy.on_request("p", 10, 60.0)  # the first gap: 10 s, not 60
    assert policy.wait("p", 60.0) == pytest.approx(_residual(10.0, policy.prior_cv2, 0.0))


def test_cost_is_measured_per_image_smoothed_and_the_size_over_bandwidth_before() -> None:
    policy = CostAwarePolicy(1000 * MB, bandwidth=100 * MB, smoothing=0.5)
    assert policy.cost("a", 50 * MB) == pytest.approx(0.5)  # no measurement: the default
    assert not policy.measured("a")
    policy.on_load("a", 50 * MB, 0.25, now=0.0)  # 200 MB/s measured
    assert policy.cost("a", 50 * MB) == pytest.approx(0.25) and policy.measured("a")
    # bytes and seconds smoothed apart: (100 + 50) / 2 MB over (1 + 0.25) / 2 s
    assert policy.bandwidth == pytest.approx(120 * MB)
    assert policy.cost("b", 300 * MB) == pytest.approx(2.5)  # the tier's measured bandwidth
    assert not policy.measured("b")
    policy.on_insert("a", 50 * MB, now=0.0)
    policy.on_load("a", 50 * MB, 0.75, now=1.0)
    assert policy.cost("a", 50 * MB) == pytest.approx(0.5)


def test_large_image_waits_for_its_second_use_small_and_fitting_ones_enter() -> None:
    policy = CostAwarePolicy(100, gate=0.2)
    large, small = Candidate("L", 30, 0.0), Candidate("s", 10, 0.0)
    policy.on_request("L", 30, 0.0)
    policy.on_request("s", 10, 0.0)
    assert not policy.admit(large, free=0, now=0.0)  # first use: the page cache serves it
    assert policy.admit(large, free=30, now=0.0)  # room to spare: nothing evicted
    assert policy.admit(small, free=0, now=0.0)
    assert not policy.admit(Candidate("huge", 101, 0.0), free=100, now=0.0)
    policy.on_request("L", 30, 60.0)
    assert policy.admit(large, free=0, now=60.0)  # proved itself (nothing resident to beat)


def test_by_default_a_tenth_of_the_budget_is_large() -> None:
    """The default gate: up to 10% of the budget enters a full L1 on its first use, above it
    the page cache serves the first use (point 1 of issue 11: no scan of large models)."""
    policy = CostAwarePolicy(1000)
    for key, size in (("tenth", 100), ("more", 101)):
        policy.on_request(key, size, 0.0)
    assert policy.admit(Candidate("tenth", 100, 0.0), free=0, now=0.0)
    assert not policy.admit(Candidate("more", 101, 0.0), free=0, now=0.0)


def test_by_default_idle_time_adds_three_tenths_of_itself_to_the_wait() -> None:
    """The default idle term, on a regular image (gaps of exactly 10 s): once it is overdue,
    the wait is its floor (``m * c2`` = 0) plus 0.3 of the time since its last use."""
    policy = CostAwarePolicy(100)
    _use(policy, "k", 10, [0.0, 10.0, 20.0, 30.0])
    assert policy.wait("k", 130.0) == pytest.approx(0.3 * 100.0, rel=1e-6)


def test_a_large_image_must_outrank_the_victims_it_would_need() -> None:
    policy = CostAwarePolicy(100, gate=0.2, bandwidth=1.0)
    # three residents used every 10 s, just now: worth 1, 0.1, 1 per byte per 10 s of wait
    for i, seconds in enumerate((30.0, 3.0, 30.0)):
        _use(policy, f"k{i}", 30, [0.0, 10.0, 20.0])
        policy.on_load(f"k{i}", 30, seconds, 20.0)
        policy.on_insert(f"k{i}", 30, 20.0)
    for key, seconds in (("big", 8.0), ("dear", 40.0)):  # the same habits, other costs
        _use(policy, key, 40, [0.0, 10.0, 20.0])
        policy.on_load(key, 40, seconds, 20.0)
    big, dear = Candidate("big", 40, 20.0), Candidate("dear", 40, 20.0)
    assert policy.admit(big, free=10, now=20.0)  # 0.2 per byte: evicts the 0.1 one
    assert not policy.admit(big, free=0, now=20.0)  # and a 1 one: no
    assert policy.admit(dear, free=0, now=20.0)  # 1 per byte
    assert len(policy) == 3  # asking evicted nothing


def test_the_ghost_list_is_bounded_least_recently_used_forgotten_first() -> None:
    policy = CostAwarePolicy(100, max_ghosts=3)
    _fill(policy, [(10, 0.0, 1.0)])  # a resident: never forgotten, not counted as a ghost
    for i in range(5):
        policy.on_request(f"g{i}", 10, float(i + 1))
    assert [policy.uses(f"g{i}", 9.0) > 0 for i in range(5)] == [False, False, True, True, True]
    assert policy.uses("k0", 9.0) == 1


def test_adopted_copies_go_after_known_ones_least_recently_used_first() -> None:
    policy = _cost_aware()
    (known,) = _fill(policy, [(10, 5.0, 1.0)])
    adopted = [Candidate("old", 10, 1.0), Candidate("older", 10, 0.0)]
    assert policy.victims([*adopted, known], 25, now=9.0) == ["k0", "older", "old"]


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="expected budget > 0"):
        CostAwarePolicy(0)
    with pytest.raises(ValueError, match="gap_smoothing"):
        CostAwarePolicy(10, gap_smoothing=0.0)


def test_the_fit_of_the_gaps_follows_each_new_use() -> None:
    """The fit is kept between uses (victims scan every resident): a new gap must refresh it."""
    policy = CostAwarePolicy(100, idle_weight=0.0, gap_smoothing=0.5)
    _use(policy, "a", 10, [0.0, 10.0, 20.0])
    assert policy.wait("a", 20.0) == pytest.approx(10.0)  # regular, every 10 s
    _use(policy, "a", 10, [120.0])  # a gap of 100: the mean is 55 now (squared CV 0.67)
    assert policy.wait("a", 120.0) == pytest.approx(55.0)
    assert policy.wait("a", 150.0) == pytest.approx(55.0 * (5050 / 55**2 - 1))  # past due


def _many(rng_seed: int, n: int = 2000) -> tuple[CostAwarePolicy, dict[str, Candidate]]:
    import random

    policy = CostAwarePolicy(10**12, bandwidth=1e6, rng=random.Random(rng_seed))
    gen = random.Random(7)
    cands = {}
    for i in range(n):
        key, size, t = f"k{i}", gen.randint(1, 1000), float(i)
        policy.on_request(key, size, t)
        policy.on_load(key, size, gen.uniform(0.01, 1.0), t)
        policy.on_insert(key, size, t)
        cands[key] = Candidate(key, size, t)
    return policy, cands


def test_victims_are_sampled_bounded_and_deterministic_with_a_seeded_rng(monkeypatch) -> None:
    """With more residents than ``sample + pool``, a search computes the worth of a bounded
    number of them, never picks one that is not a candidate (leased), frees what is needed,
    mostly from the low end, and makes the same choices for the same seed."""
    policy, cands = _many(1)
    evictable = {k: c for i, (k, c) in enumerate(cands.items()) if i % 3}  # a third leased
    calls = []
    worth = policy.worth
    monkeypatch.setattr(policy, "worth", lambda *a: calls.append(a) or worth(*a))
    out = policy.victims(evictable, 1500, 3000.0)
    assert out and set(out) <= set(evictable)
    assert sum(cands[k].size for k in out) >= 1500
    assert len(calls) <= 4 * (policy.sample + policy.pool)  # not the 2,000 of a scan
    # the chosen are among the lowest-worth fifth of all candidates
    ranked = sorted(evictable, key=lambda k: worth(k, cands[k].size, 3000.0))
    low = set(ranked[: len(ranked) // 5])
    assert sum(k in low for k in out) >= len(out) // 2
    again, cands2 = _many(1)
    assert again.victims({k: cands2[k] for k in evictable}, 1500, 3000.0) == out


def test_the_tiers_view_of_evictable_copies_is_lazy_and_exact() -> None:
    """The tier hands policies a mapping of the copies that may go: leased, pinned, busy and
    held ones are not in it, by lookup, membership, iteration or values."""
    from modelshelfd.tiers import Copy, TierName, _Evictable, cost

    copies = {f"d{i}": Copy(TierName.L1, f"d{i}", 1000 * (i + 1)) for i in range(5)}
    copies["d1"].leases = 1
    copies["d2"].pinned = True
    copies["d3"].busy = True
    asked: list[str] = []
    view = _Evictable(copies, lambda d: asked.append(d) or (float(d[1]), 2))
    assert "d0" in view and "d1" not in view and "d2" not in view and "d3" not in view
    assert asked == []  # membership builds nothing
    assert view["d4"] == Candidate("d4", cost(5000), 4.0, 2)
    with pytest.raises(KeyError):
        view["d1"]
    assert list(view) == ["d0", "d4"] and len(view) == 2
    assert [c.key for c in view.values()] == ["d0", "d4"]
    assert LRUPolicy().victims(view, 1, 0.0) == ["d0"]
    held = _Evictable(copies, lambda d: (float(d[1]), 2), {"d0": 1})  # a request waits for d0
    assert "d0" not in held and "d4" in held
    with pytest.raises(KeyError):
        held["d0"]
    assert list(held) == ["d4"] and len(held) == 1
    assert [c.key for c in held.values()] == ["d4"]
    assert LRUPolicy().victims(held, 1, 0.0) == ["d4"]


def test_a_search_for_many_victims_costs_no_more_than_a_scan(monkeypatch) -> None:
    """Freeing half the tier (a shrink under pressure) falls back to one ranking of the rest:
    the worths computed stay within about two scans, not one sample per victim."""
    policy, cands = _many(3)
    calls = []
    worth = policy.worth
    monkeypatch.setattr(policy, "worth", lambda *a: calls.append(a) or worth(*a))
    need = sum(c.size for c in cands.values()) // 2
    out = policy.victims(cands, need, 3000.0)
    assert sum(cands[k].size for k in out) >= need
    assert len(calls) <= 2 * len(cands) + policy.sample + policy.pool


def test_what_it_learned_survives_a_restart_with_the_downtime_as_idle_time() -> None:
    """``learned`` then ``restore`` in a new policy (another clock origin): the same costs,
    uses, waits and worths, each image idle for as long again as the daemon was down."""
    before = CostAwarePolicy(100 * MB, bandwidth=100 * MB, max_ghosts=8)
    for t, key in enumerate(["a", "b", "a", "c", "a", "b"]):
        before.on_request(key, MB, float(t * 10))
        before.on_load(key, MB, 0.01 * (t + 1), float(t * 10))
    before.on_insert("a", MB, 50.0)
    data = before.learned(60.0)
    after = CostAwarePolicy(100 * MB, bandwidth=100 * MB, max_ghosts=8)
    after.restore(data, now=1000.0, elapsed=30.0)  # down 30 s, a clock 940 s ahead
    assert after.bandwidth == pytest.approx(before.bandwidth)
    for key in ("a", "b", "c"):
        assert after.measured(key) and after.cost(key, MB) == before.cost(key, MB)
        assert after.uses(key, 0.0) == before.uses(key, 0.0)
        assert after.wait(key, 1000.0) == pytest.approx(before.wait(key, 90.0))
        assert after.worth(key, MB, 1000.0) == pytest.approx(before.worth(key, MB, 90.0))
    assert after.priority("a", 1000.0) is None  # residents are the tier's to say (on_insert)
    assert not after.measured("d") and after.wait("d", 1000.0) == float("inf")


def test_restore_keeps_what_this_run_learned_and_its_bound() -> None:
    old = CostAwarePolicy(100 * MB, max_ghosts=4)
    for i in range(4):
        old.on_request(f"k{i}", MB, float(i))
        old.on_load(f"k{i}", MB, 1.0, float(i))
    new = CostAwarePolicy(100 * MB, max_ghosts=4)
    new.on_request("n", MB, 2.5)
    new.on_request("m", MB, 2.6)
    new.on_request("k0", MB, 3.0)
    new.on_load("k0", MB, 9.0, 3.0)  # measured in this run: kept over the old one
    new.restore(old.learned(4.0), now=3.0)  # old k1, k2, k3 last used at 0, 1 and 2 here
    assert new.cost("k0", MB) == 9.0
    # 4 remembered at most, the least recently used forgotten: k1 and k2
    assert [new.uses(k, 0.0) for k in ("k1", "k2", "k3", "n", "m", "k0")] == [0, 0, 1, 1, 1, 1]
    assert new.measured("k3") and new.cost("k3", MB) == 1.0
