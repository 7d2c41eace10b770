"""Elo and Bradley–Terry on synthetic games from known strengths, and the game bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vinaforge.eval.judge.judging import combine_orders
from vinaforge.eval.judge.ratings import (
    Battles,
    RatingSettings,
    bradley_terry,
    compute_ratings,
    online_elo,
    pair_tables,
)

TRUE = {"alpha": 1200.0, "beta": 1100.0, "gamma": 1000.0, "delta": 900.0, "eps": 800.0}


def synthetic_games(n: int, seed: int, tie_share: float = 0.0) -> list[tuple[str, str, str]]:
    """Games between random pairs; the winner drawn from the Bradley–Terry (Elo) probabilities.

    With ``tie_share``, that share of games is declared a tie regardless of strength.
    """
    rng = np.random.default_rng(seed)
    names = list(TRUE)
    games = []
    for _ in range(n):
        i, j = rng.choice(len(names), size=2, replace=False)
        a, b = names[i], names[j]
        p_a = 1.0 / (1.0 + 10 ** ((TRUE[b] - TRUE[a]) / 400.0))
        if rng.random() < tie_share:
            games.append((a, b, "tie"))
        else:
            games.append((a, b, "model_a" if rng.random() < p_a else "model_b"))
    return games


def centred(ratings: dict[str, float]) -> dict[str, float]:
    mean = sum(ratings.values()) / len(ratings)
    return {m: r - mean for m, r in ratings.items()}


def test_both_ratings_recover_the_true_order_and_bt_the_strengths() -> None:
    result = compute_ratings(
        synthetic_games(4000, seed=7), settings=RatingSettings(n_bootstrap=200, n_shuffles=20)
    )
    truth = sorted(TRUE, key=TRUE.get, reverse=True)
    assert result["models"] == truth
    assert sorted(result["elo"], key=result["elo"].get, reverse=True) == truth
    true_c, bt_c = centred(TRUE), centred(result["bt"])
    for m in TRUE:
        assert abs(bt_c[m] - true_c[m]) < 30, (m, bt_c[m], true_c[m])
        lo, hi = result["ci"]["bt"][m]
        assert lo <= result["bt"][m] <= hi and hi - lo < 80
        lo, hi = result["ci"]["elo"][m]
        assert lo <= hi
    assert abs(sum(result["bt"].values()) / len(TRUE) - 1000.0) < 1e-6  # centred at the initial rating


def test_bt_intervals_cover_the_truth_in_most_repeats() -> None:
    covered = total = 0
    for seed in range(8):
        result = compute_ratings(
            synthetic_games(1500, seed=100 + seed), settings=RatingSettings(n_bootstrap=150, n_shuffles=1)
        )
        true_c = centred(TRUE)
        mean = sum(result["bt"].values()) / len(TRUE)
        for m in TRUE:
            lo, hi = (x - mean for x in result["ci"]["bt"][m])
            covered += lo <= true_c[m] <= hi
            total += 1
    assert covered / total >= 0.8  # nominal 95%; allow for bootstrap noise with few repeats


def test_online_elo_matches_fastchat_update_by_hand() -> None:
    battles = Battles.from_records([("a", "b", "model_a"), ("a", "b", "tie"), ("b", "a", "model_a")])
    r = online_elo(battles, RatingSettings())
    # game 1: equal ratings, expected 0.5 -> a +2, b -2
    a, b = 1002.0, 998.0
    # game 2: tie
    ea = 1 / (1 + 10 ** ((b - a) / 400))
    a, b = a + 4 * (0.5 - ea), b - 4 * (0.5 - ea)
    # game 3: b (model_a of this game) wins
    eb = 1 / (1 + 10 ** ((a - b) / 400))
    a, b = a - 4 * (1 - eb), b + 4 * (1 - eb)
    assert r.tolist() == pytest.approx([a, b], abs=1e-9)
    assert r.sum() == pytest.approx(2000.0)  # zero-sum updates


def test_bradley_terry_matches_closed_form_for_two_models() -> None:
    # 30 wins of a, 10 of b: MLE strength gap = ln(30/10) natural-log odds
    battles = Battles.from_records([("a", "b", "model_a")] * 30 + [("a", "b", "model_b")] * 10)
    wins, games = pair_tables(battles)
    r = bradley_terry(wins, games, RatingSettings(bt_prior_sd=1e6))
    assert r[0] - r[1] == pytest.approx(400 / math.log(10) * math.log(3), abs=1e-3)
    # a tie counts as half a win each way
    tied = Battles.from_records([("a", "b", "model_a")] * 20 + [("a", "b", "tie")] * 20)
    r2 = bradley_terry(*pair_tables(tied), RatingSettings(bt_prior_sd=1e6))
    assert r2[0] - r2[1] == pytest.approx(400 / math.log(10) * math.log(30 / 10), abs=1e-3)


def test_an_unbeaten_model_gets_a_finite_rating_and_a_note() -> None:
    games = [("a", "b", "model_a")] * 20 + [("b", "c", "tie")] * 10 + [("a", "c", "model_a")] * 5
    result = compute_ratings(games, settings=RatingSettings(n_bootstrap=50, n_shuffles=5))
    assert result["models"][0] == "a" and math.isfinite(result["bt"]["a"])
    assert any("a won every rated game" in n for n in result["notes"])


def test_win_tables_add_up() -> None:
    games = synthetic_games(600, seed=3, tie_share=0.2)
    result = compute_ratings(games, settings=RatingSettings(n_bootstrap=0))
    assert result["ci"]["bt"] == {}
    total_games = sum(t["games"] for t in result["totals"].values())
    assert total_games == 2 * len(games)
    for m, row in result["pair_counts"].items():
        for o, c in row.items():
            back = result["pair_counts"][o][m]
            assert (c["wins"], c["ties"], c["losses"]) == (back["losses"], back["ties"], back["wins"])
            assert result["win_rate"][m][o] + result["win_rate"][o][m] == pytest.approx(1.0, abs=1e-3)


def test_no_rated_games_gives_empty_ratings_with_a_note() -> None:
    result = compute_ratings([], models=["a", "b"])
    assert result["bt"] == {} and result["games_rated"] == 0 and "no rated games" in result["notes"][0]


def test_unknown_outcome_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown game outcome 'draw'"):
        Battles.from_records([("a", "b", "draw")])


@pytest.mark.parametrize(
    ("v_ab", "v_ba", "winner", "status"),
    [
        ("A", "B", "model_a", "consistent"),  # x wins in both orders
        ("B", "A", "model_b", "consistent"),
        ("C", "C", "tie", "consistent"),
        ("A", "A", "tie", "inconsistent"),  # first slot wins both times: position bias
        ("A", "C", "tie", "inconsistent"),
        ("A", None, None, "unparseable"),
    ],
)
def test_combine_orders(v_ab, v_ba, winner, status) -> None:
    def rec(first, second, v):
        w = {"A": first, "B": second, "C": "tie"}.get(v)
        return {"verdict": v, "winner": w, "status": "ok" if v else "unparseable"}

    game = combine_orders("q", "math", "x", "y", rec("x", "y", v_ab), rec("y", "x", v_ba))
    assert (game.winner, game.status) == (winner, status)


def test_combine_orders_failed_and_incomplete() -> None:
    ok = {"verdict": "A", "winner": "x", "status": "ok"}
    failed = {"verdict": None, "winner": None, "status": "failed"}
    assert combine_orders("q", "c", "x", "y", ok, failed).status == "failed"
    assert combine_orders("q", "c", "x", "y", ok, None).status == "incomplete"
