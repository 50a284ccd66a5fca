"""Fair share of domains across live replicas: which domains to claim, which to give back.

Pure arithmetic over a snapshot of the lease and heartbeat tables, so every rule is a table
test. The `LeaseManager` (state/leases.py) takes a snapshot, asks `plan`, and acts.

The rules, and why:

* Targets are exact: with D domains and L live replicas, the first D mod L replicas (by
  sorted id, so every replica computes the same answer) get ceil(D/L), the rest floor(D/L).
  They add up to D, so once every replica sits at its target every domain is owned.
* A replica under its target claims free or expired domains. While no *other* live replica
  is under its own target it may claim up to ceil(D/L): this is what makes a takeover fast
  when a dead peer's heartbeat is still visible (its target still counts, but its leases
  have expired). When a peer is under target, claims stop at the exact target so that the
  peer, not us, gets the domains a rebalance frees (no flapping).
* A replica that left one of its leases expire is not counted as live, heartbeat or not.
* A replica over its target gives back the surplus only while some other live replica is
  under its target (never more than their total deficit): a domain released without
  anybody to take it would only pause.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LeaseView:
    """One row of the lease table as PostgreSQL saw it."""

    domain: str
    owner: str | None
    epoch: int
    expires_in: float | None  # seconds, PostgreSQL's clock; None or <= 0: not held

    @property
    def held(self) -> bool:
        return self.owner is not None and self.expires_in is not None and self.expires_in > 0


@dataclass(frozen=True, slots=True)
class Plan:
    claim: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    target: int = 0


def targets(live: Iterable[str], domains: int) -> dict[str, int]:
    """Exact fair share per live replica; the shares add up to `domains`."""
    ranked = sorted(set(live))
    if not ranked:
        return {}
    base, extra = divmod(domains, len(ranked))
    return {rid: base + (1 if rank < extra else 0) for rank, rid in enumerate(ranked)}


def owned_counts(leases: Iterable[LeaseView], domains: Collection[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for lease in leases:
        if lease.held and lease.domain in domains and lease.owner is not None:
            counts[lease.owner] = counts.get(lease.owner, 0) + 1
    return counts


def plan(
    me: str,
    live: Collection[str],
    leases: Mapping[str, LeaseView],
    domains: Collection[str],
) -> Plan:
    """What `me` should do now. `domains`: the domains this replica is configured to serve;
    `live`: replicas with a fresh heartbeat (`me` is counted in any case)."""
    wanted = sorted(set(domains))
    # A replica whose lease expired under its name did not renew it: dead, frozen or cut
    # off, whatever its heartbeat row still says. Counting it would hold its domains back.
    stale = {
        lease.owner
        for lease in leases.values()
        if lease.owner is not None and not lease.held and lease.owner != me
    }
    everyone = (set(live) - stale) | {me}
    share = targets(everyone, len(wanted))
    target = share[me]
    counts = owned_counts(leases.values(), set(wanted))
    mine = [
        d
        for d in wanted
        if (lease := leases.get(d)) is not None and lease.held and lease.owner == me
    ]
    free = [d for d in wanted if (lease := leases.get(d)) is None or not lease.held]
    others_deficit = sum(max(0, share[rid] - counts.get(rid, 0)) for rid in everyone if rid != me)
    ceiling = -(-len(wanted) // len(everyone)) if wanted else 0
    limit = target if others_deficit else ceiling
    claim = free[: max(0, limit - len(mine))]
    surplus = min(len(mine) - target, others_deficit) if len(mine) > target else 0
    # Give back the last ones in name order: deterministic, and the same domains stay put
    # across repeated plans.
    release = mine[len(mine) - surplus :] if surplus > 0 else []
    return Plan(claim=claim, release=release, target=target)
