"""Rankings into one order per parent: Ranked Pairs and Bradley–Terry; rater reliability.

Library parts: Bradley–Terry is vinaforge's fit (:func:`vinaforge.eval.judge.ratings.bradley_terry`,
Newton's method with a weak prior, Elo scale) and Krippendorff's α is the ``krippendorff``
package (ordinal level). Kendall's τ is a few lines (see :func:`kendall_tau` for why).

Hand-written: Ranked Pairs (Tideman), the rule Open-Assistant aggregates its rankings with;
no maintained package implements it on partial rankings. Every pair of replies gets the number
of raters who put one above the other; majorities are locked in from the strongest down,
skipping any that would close a cycle; the locked graph's order is the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np


def pairwise_counts(rankings: Sequence[Sequence[int]], items: Sequence[int]) -> np.ndarray:
    """``P[i, j]`` = raters who ranked ``items[i]`` above ``items[j]`` (both must be in the ranking)."""
    index = {m: k for k, m in enumerate(items)}
    P = np.zeros((len(items), len(items)))
    for order in rankings:
        pos = [index[m] for m in order if m in index]
        for a in range(len(pos)):
            for b in range(a + 1, len(pos)):
                P[pos[a], pos[b]] += 1
    return P


def ranked_pairs(rankings: Sequence[Sequence[int]], items: Sequence[int] | None = None) -> list[int]:
    """Tideman's Ranked Pairs order of ``items``, best first; ties broken by lower id."""
    items = sorted(items if items is not None else {m for r in rankings for m in r})
    n = len(items)
    if n < 2:
        return list(items)
    P = pairwise_counts(rankings, items)
    majorities = [
        (P[i, j], -P[j, i], i, j) for i in range(n) for j in range(n) if i != j and P[i, j] > P[j, i]
    ]
    majorities.sort(key=lambda t: (-t[0], -t[1], items[t[2]], items[t[3]]))
    locked: dict[int, set[int]] = {i: set() for i in range(n)}

    def reaches(src: int, dst: int) -> bool:
        stack, seen = [src], set()
        while stack:
            v = stack.pop()
            if v == dst:
                return True
            if v not in seen:
                seen.add(v)
                stack.extend(locked[v])
        return False

    for _, _, i, j in majorities:
        if not reaches(j, i):
            locked[i].add(j)
    # order: repeatedly take the candidates nobody remaining beats (lowest id first among them)
    remaining, order = set(range(n)), []
    while remaining:
        beaten = {j for i in remaining for j in locked[i] if j in remaining}
        sources = sorted(remaining - beaten, key=lambda k: items[k])
        order.append(sources[0])
        remaining.remove(sources[0])
    return [items[k] for k in order]


def ranks_with_ties(rankings: Sequence[Sequence[int]], order: Sequence[int]) -> list[int]:
    """Dense ranks (1 = best) of a consensus ``order``: ties where the raters are split evenly.

    A reply shares the rank of the group just above it when, against every member of that
    group, as many raters put it above as below; otherwise it starts the next rank. With an odd
    number of complete rankings there are no ties.
    """
    P = pairwise_counts(rankings, order)
    ranks: list[int] = []
    group: list[int] = []
    for k in range(len(order)):
        if group and all(P[k, g] == P[g, k] for g in group):
            group.append(k)
            ranks.append(ranks[-1])
        else:
            group = [k]
            ranks.append(ranks[-1] + 1 if ranks else 1)
    return ranks


def bradley_terry_scores(
    rankings: Sequence[Sequence[int]], items: Sequence[int] | None = None
) -> dict[int, float]:
    """Bradley–Terry ratings (Elo scale, centred at 1000) from the pairwise wins in the rankings."""
    from vinaforge.eval.judge.ratings import RatingSettings, bradley_terry

    items = sorted(items if items is not None else {m for r in rankings for m in r})
    if len(items) < 2:
        return {m: 1000.0 for m in items}
    wins = pairwise_counts(rankings, items)
    ratings = bradley_terry(wins, wins + wins.T, RatingSettings())
    return {m: round(float(r), 1) for m, r in zip(items, ratings, strict=True)}


def kendall_tau(order: Sequence[int], reference: Sequence[int]) -> float | None:
    """Kendall's τ between two orders on their common items (None with fewer than 2).

    Rankings are strict orders (no ties), so τ-b equals τ-a = (concordant − discordant) / pairs;
    for the handful of replies of one parent these few lines are ~100× cheaper than a
    ``scipy.stats.kendalltau`` call (checked equal in the tests), which matters when every
    ranking of the database is compared with its consensus for each leaderboard refresh.
    """
    pos = {m: k for k, m in enumerate(order)}
    common = [pos[m] for m in reference if m in pos]
    n = len(common)
    if n < 2:
        return None
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            s += 1 if common[i] < common[j] else -1
    return s / (n * (n - 1) / 2)


def krippendorff_alpha(rankings: Sequence[Sequence[int]], items: Sequence[int] | None = None) -> float | None:
    """Ordinal Krippendorff's α over raters × replies (rank positions); None when undefined."""
    import krippendorff

    items = sorted(items if items is not None else {m for r in rankings for m in r})
    if len(rankings) < 2 or len(items) < 2:
        return None
    data = np.full((len(rankings), len(items)), np.nan)
    index = {m: k for k, m in enumerate(items)}
    for r, order in enumerate(rankings):
        for pos, m in enumerate(order):
            if m in index:
                data[r, index[m]] = pos + 1
    try:
        value = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    except (ValueError, ZeroDivisionError):
        return None
    return None if math.isnan(value) else round(float(value), 4)


@dataclass
class ParentResult:
    """The aggregate of one parent's rankings; Bradley–Terry and α are computed when first asked."""

    parent_id: int
    rankings: list[list[int]]
    counted: bool
    ranked_pairs: list[int]

    @property
    def n_rankings(self) -> int:
        return len(self.rankings)

    @cached_property
    def bradley_terry(self) -> dict[int, float]:
        return bradley_terry_scores(self.rankings)

    @cached_property
    def alpha(self) -> float | None:
        return krippendorff_alpha(self.rankings)


def aggregate_parent(parent_id: int, rankings: Sequence[Sequence[int]], min_rankings: int) -> ParentResult:
    rankings = [list(r) for r in rankings]
    return ParentResult(
        parent_id=parent_id,
        rankings=rankings,
        counted=len(rankings) >= min_rankings,
        ranked_pairs=ranked_pairs(rankings),
    )


def rater_agreement(
    by_parent: dict[int, list[tuple[int, list[int]]]], min_rankings: int
) -> dict[int, list[float]]:
    """Per rater, Kendall's τ of each counted ranking against the consensus of the *other* raters.

    Leave-one-out, so that a rater cannot agree with themselves; a parent counts once it has
    ``min_rankings`` rankings.
    """
    taus: dict[int, list[float]] = {}
    for rows in by_parent.values():
        if len(rows) < min_rankings:
            continue
        for k, (user, order) in enumerate(rows):
            others = [o for j, (_, o) in enumerate(rows) if j != k]
            tau = kendall_tau(order, ranked_pairs(others))
            if tau is not None:
                taus.setdefault(user, []).append(tau)
    return taus
