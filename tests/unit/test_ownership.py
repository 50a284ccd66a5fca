"""Fair-share arithmetic of replicas and domains, as tables (core/ownership.py)."""

from __future__ import annotations

import pytest

from daily_otel_bridge.core.ownership import LeaseView, Plan, plan, targets

DOMAINS = ["a", "b", "c", "d"]


def held(owner: str, epoch: int = 1, expires_in: float = 20.0) -> tuple[str, int, float]:
    return (owner, epoch, expires_in)


def leases(**rows: tuple[str | None, int, float | None]) -> dict[str, LeaseView]:
    return {d: LeaseView(d, owner, epoch, exp) for d, (owner, epoch, exp) in rows.items()}


@pytest.mark.parametrize(
    ("live", "domains", "expected"),
    [
        ([], 4, {}),
        (["r1"], 4, {"r1": 4}),
        (["r1", "r2"], 4, {"r1": 2, "r2": 2}),
        (["r3", "r1", "r2"], 4, {"r1": 2, "r2": 1, "r3": 1}),  # rank by sorted id
        (["r1", "r2", "r3"], 2, {"r1": 1, "r2": 1, "r3": 0}),
        (["r1", "r2", "r2"], 3, {"r1": 2, "r2": 1}),  # duplicates count once
        (["r1", "r2"], 0, {"r1": 0, "r2": 0}),
    ],
)
def test_targets_add_up_and_are_deterministic(
    live: list[str], domains: int, expected: dict[str, int]
) -> None:
    assert targets(live, domains) == expected
    assert sum(expected.values()) == (domains if live else 0)


@pytest.mark.parametrize(
    ("me", "live", "rows", "expected"),
    [
        # Alone and nothing claimed yet: everything, in name order.
        ("r1", ["r1"], {}, Plan(claim=["a", "b", "c", "d"], target=4)),
        # Three start at once: each claims up to its exact target... or the ceiling (2)
        # while nobody else is under target; here everybody is, so the exact target.
        ("r2", ["r1", "r2", "r3"], {}, Plan(claim=["a"], target=1)),
        ("r1", ["r1", "r2", "r3"], {}, Plan(claim=["a", "b"], target=2)),
        # Balanced: nothing to do.
        (
            "r2",
            ["r1", "r2", "r3"],
            {"a": held("r1"), "b": held("r1"), "c": held("r2"), "d": held("r3")},
            Plan(target=1),
        ),
        # r3 was killed: its lease expired, its heartbeat is still visible. A replica that
        # let a lease expire is not live: r2's target becomes 2 and it takes d at once.
        (
            "r2",
            ["r1", "r2", "r3"],
            {"a": held("r1"), "b": held("r1"), "c": held("r2"), "d": ("r3", 4, -1.0)},
            Plan(claim=["d"], target=2),
        ),
        # r3 is live and owns nothing (a newcomer): r2 is at its target and leaves the free
        # domain to r3 instead of racing it for the ceiling.
        (
            "r2",
            ["r1", "r2", "r3"],
            {"a": held("r1"), "b": held("r1"), "c": held("r2"), "d": (None, 4, None)},
            Plan(claim=[], target=1),
        ),
        # Released on SIGTERM (owner NULL): free as well.
        (
            "r1",
            ["r1", "r2"],
            {"a": held("r1"), "b": held("r1"), "c": held("r2"), "d": (None, 7, None)},
            Plan(claim=[], target=2),
        ),
        (
            "r2",
            ["r1", "r2"],
            {"a": held("r1"), "b": held("r1"), "c": held("r2"), "d": (None, 7, None)},
            Plan(claim=["d"], target=2),
        ),
        # A fourth replica joins: r1 owns all four, targets are 1 each, the others' deficit
        # is 3: r1 gives back its last three.
        (
            "r1",
            ["r1", "r2", "r3", "r4"],
            {"a": held("r1"), "b": held("r1"), "c": held("r1"), "d": held("r1")},
            Plan(release=["b", "c", "d"], target=1),
        ),
        # r2 is under its target: r1 gives back one, the last in name order.
        (
            "r1",
            ["r1", "r2"],
            {"a": held("r1"), "b": held("r1"), "c": held("r1"), "d": held("r2")},
            Plan(release=["c"], target=2),
        ),
        # Over target but nobody under it (the newcomer's heartbeat is not in yet): keep.
        (
            "r1",
            ["r1"],
            {"a": held("r1"), "b": held("r1"), "c": held("r1"), "d": held("r2")},
            Plan(release=[], target=4),
        ),
        # A newcomer under target while a peer releases: claims only to its exact target.
        (
            "r2",
            ["r1", "r2", "r3"],
            {"a": held("r1"), "b": held("r1"), "c": (None, 2, None), "d": held("r1")},
            Plan(claim=["c"], target=1),
        ),
        # Someone else (r3) is under target: r2 stays at its exact target, not the ceiling.
        (
            "r2",
            ["r1", "r2", "r3"],
            {"a": held("r1"), "b": held("r1"), "c": held("r2"), "d": (None, 2, None)},
            Plan(claim=[], target=1),
        ),
        # Domains not in this replica's config are neither claimed nor counted.
        (
            "r1",
            ["r1"],
            {"zz": held("r2"), "a": held("r1")},
            Plan(claim=["b", "c", "d"], target=4),
        ),
        # A lease of mine that PostgreSQL sees as expired is not mine: claim it again.
        ("r1", ["r1"], {"a": ("r1", 3, 0.0)}, Plan(claim=["a", "b", "c", "d"], target=4)),
    ],
)
def test_plan(
    me: str,
    live: list[str],
    rows: dict[str, tuple[str | None, int, float | None]],
    expected: Plan,
) -> None:
    assert plan(me, live, leases(**rows), DOMAINS) == expected


def test_plan_without_domains_claims_nothing() -> None:
    assert plan("r1", ["r1", "r2"], {}, []) == Plan(target=0)


@pytest.mark.parametrize("replicas", [1, 2, 3, 5])
@pytest.mark.parametrize("n_domains", [0, 1, 4, 7])
def test_rounds_of_plans_converge_to_every_domain_owned_once(replicas: int, n_domains: int) -> None:
    """Replicas acting one after another on a shared table (claims succeed when the row is
    free, as the conditional UPDATE does) end balanced within two rounds."""
    names = [f"r{i}" for i in range(replicas)]
    domains = [f"d{i}" for i in range(n_domains)]
    table: dict[str, LeaseView] = {}
    for _ in range(3):
        for me in names:
            p = plan(me, names, table, domains)
            for d in p.release:
                table[d] = LeaseView(d, None, table[d].epoch, None)
            for d in p.claim:
                if d not in table or not table[d].held:
                    epoch = table[d].epoch + 1 if d in table else 1
                    table[d] = LeaseView(d, me, epoch, 30.0)
    owners = [table[d].owner for d in domains]
    assert None not in owners
    share = targets(names, n_domains)
    assert {r: owners.count(r) for r in names} == share
