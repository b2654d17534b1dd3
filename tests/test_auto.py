"""The rule that sets κ_max and the Fourier features from the data, and how training uses it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

import cnfm_core.auto as auto
from cnfm_core.auto import KAPPA_CAP, KAPPA_MIN, choose_settings
from cnfm_core.data import make_split, read_points
from cnfm_core.kde import KDEFit
from cnfm_core.synthetic import DEFAULT_MIXTURE
from cnfm_core.train import TrainConfig, load_field, train

TINY = dict(hidden=32, layers=2, batch_size=64, log_every=5, eval_every=10_000, threads=1)


def _clusters(n: int, kappa: float, seed: int) -> np.ndarray:
    """``n`` points around 6 random centres, each a vMF(kappa) draw from scipy."""
    rng = np.random.default_rng(seed)
    centres = stats.uniform_direction(3).rvs(6, random_state=rng)
    which = rng.integers(0, 6, n)
    x = np.concatenate([stats.vonmises_fisher(centres[k], kappa).rvs(int((which == k).sum()), random_state=rng)
                        for k in range(6)])
    return x[rng.permutation(n)]


def _write(path, xyz) -> str:
    lat = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1, 1)))
    lon = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    path.write_text("lat,lon\n" + "".join(f"{a:.7f},{b:.7f}\n" for a, b in zip(lat, lon, strict=True)))
    return str(path)


@pytest.mark.parametrize("kde_kappa, kappa_max, features", [
    (10.0, KAPPA_MIN, 0), (999.0, KAPPA_MIN, 0), (1000.0, KAPPA_MIN, 32), (2000.0, KAPPA_MIN, 32),
    (1e4, 1e4, 32), (1e8, KAPPA_CAP, 32)])
def test_rule_maps_the_kde_concentration(monkeypatch, kde_kappa, kappa_max, features):
    monkeypatch.setattr(auto, "fit_kde", lambda train, val: KDEFit(kde_kappa, 0.05, 0.0))
    x = stats.uniform_direction(3).rvs(200, random_state=0)
    c = choose_settings(x[:150], x[150:])
    assert (c.kappa_max, c.space_frequencies) == (kappa_max, features)
    assert (c.kde_kappa, c.kde_weight, c.held_out) == (kde_kappa, 0.05, "the validation split")
    assert ("clustered" if features else "smooth") in c.describe()


def test_smooth_data_keep_the_fixed_settings():
    # The bundled six-component mixture: structure tens of degrees wide.
    x = DEFAULT_MIXTURE.sample(1500, seed=0)
    c = choose_settings(x[:1200], x[1200:])
    assert c.kde_kappa < 1000 and (c.kappa_max, c.space_frequencies) == (KAPPA_MIN, 0)


def test_clustered_data_get_a_sharp_target_and_features():
    # Clusters a fraction of a degree wide (vMF kappa 1e5): the held-out KDE is sharp, the target follows it.
    x = _clusters(1200, 1e5, seed=1)
    c = choose_settings(x[:1000], x[1000:])
    assert c.kde_kappa >= 1e4 and c.space_frequencies == 32
    assert c.kappa_max == min(c.kde_kappa, KAPPA_CAP) and KAPPA_MIN <= c.kappa_max <= KAPPA_CAP


def test_repeated_locations_are_capped():
    # Every held-out point repeats a training point: the best KDE is as sharp as the grid allows.
    x = stats.uniform_direction(3).rvs(100, random_state=2)
    c = choose_settings(np.concatenate([x, x]), x[:30])
    assert c.kde_kappa == 1e8 and c.kappa_max == KAPPA_CAP


def test_without_validation_a_tenth_of_train_stands_in_and_tiny_sets_get_fixed_settings():
    x = _clusters(400, 1e5, seed=3)
    c = choose_settings(x, np.zeros((0, 3)), seed=5)
    assert c.held_out == "a tenth of the training points" and c.space_frequencies == 32
    assert choose_settings(x, np.zeros((0, 3)), seed=5) == c  # seeded
    tiny = choose_settings(x[:19], np.zeros((0, 3)))
    assert tiny.kde_kappa is None and (tiny.kappa_max, tiny.space_frequencies) == (KAPPA_MIN, 0)
    assert "Too few points" in tiny.describe()


def test_large_sets_are_subsampled(monkeypatch):
    seen = {}

    def fake(train, val):
        seen.update(train=train.shape, val=val.shape)
        return KDEFit(100.0, 0.0, 0.0)

    monkeypatch.setattr(auto, "fit_kde", fake)
    x = stats.uniform_direction(3).rvs(30_000, random_state=4)
    choose_settings(x[:25_000], x[25_000:])
    assert seen == {"train": (auto.MAX_CENTRES, 3), "val": (auto.MAX_HELD_OUT, 3)}


def test_training_records_the_choice_and_resumes_with_it(tmp_path, single_thread):
    data = _write(tmp_path / "clusters.csv", _clusters(300, 1e5, seed=6))
    run = tmp_path / "run"
    train(TrainConfig(data=data, steps=5, **TINY), run)
    meta = json.loads((run / "config.json").read_text())
    points = read_points(data)
    s = make_split(points, mode="standard", seed=0)
    want = choose_settings(points.xyz[s.train], points.xyz[s.val], seed=0)
    assert meta["auto"]["fields"] == ["kappa_max", "space_frequencies"]
    assert meta["auto"]["description"] == want.describe()
    assert (meta["config"]["kappa_max"], meta["config"]["space_frequencies"]) == (want.kappa_max, 32)
    model, config = load_field(run)
    assert config.space_frequencies == 32 and model.space_frequencies == 32
    train(TrainConfig(steps=8), run, resume=True)  # the saved, concrete settings; nothing chosen again
    meta2 = json.loads((run / "config.json").read_text())
    assert meta2["config"]["kappa_max"] == want.kappa_max and meta2["auto"] == meta["auto"]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 8


def test_a_value_given_is_kept(tmp_path, single_thread):
    data = _write(tmp_path / "clusters.csv", _clusters(300, 1e5, seed=7))
    train(TrainConfig(data=data, steps=3, kappa_max=500.0, **TINY), tmp_path / "a")
    meta = json.loads((tmp_path / "a" / "config.json").read_text())
    assert meta["config"]["kappa_max"] == 500.0 and meta["config"]["space_frequencies"] == 32
    assert meta["auto"]["fields"] == ["space_frequencies"] and "κ_max" not in meta["auto"]["description"]
    train(TrainConfig(data=data, steps=3, kappa_max=500.0, space_frequencies=0, **TINY), tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "config.json").read_text())
    assert meta["auto"] is None and meta["config"]["space_frequencies"] == 0
