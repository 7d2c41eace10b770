"""Ratings from pairwise games: online Elo, Bradley–Terry, bootstrap intervals, win rates.

Follows FastChat's Chatbot Arena notebook: online Elo with K=4, scale 400, base 10, initial
rating 1000 (a tie scores ½), whose point estimate here is the mean over shuffled game orders
(online Elo depends on the order); and the Bradley–Terry maximum-likelihood fit, the
order-free model of ``compute_mle_elo``, on the same Elo scale (P(a beats b) = 1 / (1 + 10^((R_b
− R_a)/400)), a tie counted as half a win each way), centred at 1000. Confidence intervals come
from bootstrap resampling of games (percentile intervals). Hand-written on numpy: FastChat is not
installable as a light dependency, and a generic logistic regression (sklearn, scipy) would
replace only the few lines of Newton's method below while being ~70 times slower on the
thousand refits a bootstrap needs. The Bradley–Terry fit has a weak Gaussian prior (ridge)
so that a model that wins every game gets a large but finite rating instead of an endless one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

OUTCOME_SCORE = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}


@dataclass
class RatingSettings:
    """Elo constants (FastChat's), bootstrap size and the Bradley–Terry prior."""

    k: float = 4.0
    scale: float = 400.0
    base: float = 10.0
    init: float = 1000.0
    n_shuffles: int = 100
    n_bootstrap: int = 1000
    ci: float = 0.95
    bt_prior_sd: float = 10.0
    """Standard deviation of the prior on natural-log strengths (10 ≈ 1,700 Elo points: weak)."""
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Battles:
    """Rated games as index arrays: ``score`` is 1 (a wins), 0 (b wins) or 0.5 (tie)."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray

    @classmethod
    def from_records(
        cls, records: Sequence[tuple[str, str, str]], models: Sequence[str] | None = None
    ) -> Battles:
        """From ``(model_a, model_b, winner)`` with winner in ``model_a``/``model_b``/``tie``."""
        names = sorted({m for a, b, _ in records for m in (a, b)} | set(models or []))
        index = {m: i for i, m in enumerate(names)}
        a = np.array([index[r[0]] for r in records], dtype=np.int64)
        b = np.array([index[r[1]] for r in records], dtype=np.int64)
        try:
            score = np.array([OUTCOME_SCORE[r[2]] for r in records], dtype=np.float64)
        except KeyError as err:
            raise ValueError(
                f"unknown game outcome {err.args[0]!r}; expected model_a, model_b or tie"
            ) from None
        return cls(names, a, b, score)

    def __len__(self) -> int:
        return len(self.score)

    def subset(self, idx: np.ndarray) -> Battles:
        return Battles(self.models, self.a[idx], self.b[idx], self.score[idx])


# ----------------------------------------------------------------------------- online Elo


def online_elo(battles: Battles, s: RatingSettings, order: np.ndarray | None = None) -> np.ndarray:
    """FastChat's ``compute_elo``: one pass over the games in ``order`` (default: as given)."""
    rating = [float(s.init)] * len(battles.models)  # plain floats: ~5x faster than numpy scalars here
    idx = np.arange(len(battles)) if order is None else order
    a_all, b_all, y_all = battles.a[idx].tolist(), battles.b[idx].tolist(), battles.score[idx].tolist()
    k, scale, base = s.k, s.scale, s.base
    for a, b, y in zip(a_all, b_all, y_all, strict=True):
        ea = 1.0 / (1.0 + base ** ((rating[b] - rating[a]) / scale))
        delta = k * (y - ea)
        rating[a] += delta
        rating[b] -= delta  # eb = 1 - ea, sb = 1 - y: the update is symmetric
    return np.array(rating)


def elo_mean_over_orders(battles: Battles, s: RatingSettings, rng: np.random.Generator) -> np.ndarray:
    """Online Elo averaged over ``n_shuffles`` random orders of the games."""
    runs = [online_elo(battles, s, rng.permutation(len(battles))) for _ in range(max(1, s.n_shuffles))]
    return np.mean(runs, axis=0)


# ----------------------------------------------------------------------------- Bradley–Terry


def pair_tables(battles: Battles) -> tuple[np.ndarray, np.ndarray]:
    """``wins[i, j]`` = score of i against j (ties count ½), ``games[i, j]`` = games between them."""
    n = len(battles.models)
    wins = np.zeros((n, n))
    games = np.zeros((n, n))
    np.add.at(wins, (battles.a, battles.b), battles.score)
    np.add.at(wins, (battles.b, battles.a), 1.0 - battles.score)
    np.add.at(games, (battles.a, battles.b), 1.0)
    np.add.at(games, (battles.b, battles.a), 1.0)
    return wins, games


def bradley_terry(wins: np.ndarray, games: np.ndarray, s: RatingSettings, tol: float = 1e-10) -> np.ndarray:
    """Maximum a posteriori Bradley–Terry ratings on the Elo scale, centred at ``s.init``.

    Strengths θ (natural log-odds) minimise the convex loss
    Σ_ij wins_ij·log(1 + e^−(θ_i − θ_j)) + Σ θ²/(2·sd²), solved by Newton's method with step
    halving (a handful of iterations for a few models); ratings are ``init + scale/ln(base)·θ``.
    The prior's gradient forces Σθ = 0, which centres the ratings.
    """
    n = wins.shape[0]
    prec = 1.0 / s.bt_prior_sd**2

    def loss(theta: np.ndarray) -> float:
        d = theta[:, None] - theta[None, :]
        return float(np.sum(wins * np.logaddexp(0.0, -d))) + 0.5 * prec * float(theta @ theta)

    theta = np.zeros(n)
    current = loss(theta)
    for _ in range(200):
        d = theta[:, None] - theta[None, :]
        p = 0.5 * (1.0 + np.tanh(d / 2.0))  # σ(d) without overflow
        g_pair = wins * (1.0 - p)  # wins_ij · σ(−d_ij)
        grad = -g_pair.sum(axis=1) + g_pair.sum(axis=0) + prec * theta
        curv = games * p * (1.0 - p)
        hess = np.diag(curv.sum(axis=1) + prec) - curv
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:
            candidate = theta - t * step
            value = loss(candidate)
            if value <= current + 1e-12 or t < 1e-6:
                break
            t /= 2.0
        theta, previous, current = candidate, current, value
        if previous - current < tol * max(1.0, abs(current)) and np.max(np.abs(t * step)) < 1e-8:
            break
    theta = theta - theta.mean()
    return s.init + s.scale / math.log(s.base) * theta


# ----------------------------------------------------------------------------- bootstrap


def bootstrap(battles: Battles, s: RatingSettings, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(elo, bt)`` arrays of shape (n_bootstrap, n_models), from games resampled with replacement."""
    n = len(battles)
    elo_runs, bt_runs = [], []
    for _ in range(s.n_bootstrap):
        idx = rng.integers(0, n, size=n)  # random order too, as FastChat's sample(frac=1, replace=True)
        sample = battles.subset(idx)
        elo_runs.append(online_elo(sample, s))
        wins, games = pair_tables(sample)
        bt_runs.append(bradley_terry(wins, games, s))
    return np.array(elo_runs), np.array(bt_runs)


def percentile_ci(samples: np.ndarray, level: float) -> np.ndarray:
    """(n_models, 2) lower and upper bounds of the central ``level`` interval."""
    tail = (1.0 - level) / 2.0 * 100.0
    return np.percentile(samples, [tail, 100.0 - tail], axis=0).T


# ----------------------------------------------------------------------------- all together


def compute_ratings(
    records: Sequence[tuple[str, str, str]],
    models: Sequence[str] | None = None,
    settings: RatingSettings | None = None,
) -> dict[str, Any]:
    """Elo, Bradley–Terry, their intervals and the win-rate matrix for ``(a, b, winner)`` games."""
    s = settings or RatingSettings()
    battles = Battles.from_records(records, models)
    names = battles.models
    if len(names) < 2:
        raise ValueError(f"ratings need games between at least two models, got {names}")
    wins, games = pair_tables(battles)
    out: dict[str, Any] = {"models": [], "settings": s.to_dict(), "games_rated": len(battles), "notes": []}
    if len(battles) == 0:
        out["models"] = list(names)
        out["notes"].append("no rated games: every game was unparseable, failed or incomplete")
        out.update(bt={}, elo={}, ci={"bt": {}, "elo": {}}, win_rate={}, pair_counts={}, totals={})
        return out
    rng = np.random.default_rng(s.seed)
    bt = bradley_terry(wins, games, s)
    elo = elo_mean_over_orders(battles, s, rng)
    elo_ci = bt_ci = None
    if s.n_bootstrap > 0:
        elo_boot, bt_boot = bootstrap(battles, s, rng)
        elo_ci, bt_ci = percentile_ci(elo_boot, s.ci), percentile_ci(bt_boot, s.ci)
    order = sorted(range(len(names)), key=lambda i: -bt[i])
    out["models"] = [names[i] for i in order]
    out["bt"] = {names[i]: round(float(bt[i]), 2) for i in order}
    out["elo"] = {names[i]: round(float(elo[i]), 2) for i in order}
    out["ci"] = {
        "level": s.ci,
        "bt": {names[i]: [round(float(x), 2) for x in bt_ci[i]] for i in order} if bt_ci is not None else {},
        "elo": {names[i]: [round(float(x), 2) for x in elo_ci[i]] for i in order}
        if elo_ci is not None
        else {},
    }
    out["win_rate"], out["pair_counts"], out["totals"] = win_tables(battles, [names[i] for i in order])
    for i in order:
        played = games[i].sum()
        if played and wins[i].sum() == played:
            out["notes"].append(
                f"{names[i]} won every rated game: its Bradley–Terry rating is bounded only by the prior"
            )
        elif played and wins[i].sum() == 0:
            out["notes"].append(
                f"{names[i]} lost every rated game: its Bradley–Terry rating is bounded only by the prior"
            )
    return out


def win_tables(battles: Battles, order: list[str]) -> tuple[dict, dict, dict]:
    """Win rate of each row model against each column model (ties ½), W/T/L counts, totals."""
    index = {m: i for i, m in enumerate(battles.models)}
    n = len(battles.models)
    w = np.zeros((n, n))
    t = np.zeros((n, n))
    np.add.at(w, (battles.a, battles.b), battles.score == 1.0)
    np.add.at(w, (battles.b, battles.a), battles.score == 0.0)
    np.add.at(t, (battles.a, battles.b), battles.score == 0.5)
    np.add.at(t, (battles.b, battles.a), battles.score == 0.5)
    rate: dict[str, dict[str, float | None]] = {}
    counts: dict[str, dict[str, dict[str, int]]] = {}
    totals: dict[str, dict[str, Any]] = {}
    for m in order:
        i = index[m]
        rate[m], counts[m] = {}, {}
        for o in order:
            if o == m:
                continue
            j = index[o]
            played = w[i, j] + w[j, i] + t[i, j]
            rate[m][o] = round(float((w[i, j] + 0.5 * t[i, j]) / played), 4) if played else None
            counts[m][o] = {"wins": int(w[i, j]), "ties": int(t[i, j]), "losses": int(w[j, i])}
        wins_i, ties_i, losses_i = int(w[i].sum()), int(t[i].sum()), int(w[:, i].sum())
        games_i = wins_i + ties_i + losses_i
        totals[m] = {
            "wins": wins_i,
            "ties": ties_i,
            "losses": losses_i,
            "games": games_i,
            "win_rate": round((wins_i + 0.5 * ties_i) / games_i, 4) if games_i else None,
        }
    return rate, counts, totals
