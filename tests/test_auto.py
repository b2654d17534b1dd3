"""The rule that sets κ_max and the Fourier features from the data, and how training uses it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

import cnfm_core.auto as auto
from cnfm_core.auto import KAPPA_CAP, KAPPA_MIN, choose_settings
from cnfm_core.builders import build_path, load_field
from cnfm_core.config import TrainConfig
from cnfm_core.data import read_points
from cnfm_core.kde import AdaptiveKDEFit, KDEFit, adaptive_kappas, fit_adaptive_kde, kde_log_prob
from cnfm_core.splits import make_split
from cnfm_core.synthetic import DEFAULT_MIXTURE
from cnfm_core.train import train

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


@pytest.mark.parametrize("kde_kappa, kappa_max, features, base", [
    (10.0, KAPPA_MIN, 0, "none"), (999.0, KAPPA_MIN, 0, "none"), (1000.0, KAPPA_MIN, 32, "none"),
    (2000.0, KAPPA_MIN, 32, "none"), (1e4, 1e4, 32, "none"), (KAPPA_CAP, KAPPA_CAP, 32, "none"),
    (1e6, 1e6, 32, "kernel"), (1e8, 1e8, 32, "kernel")])
def test_rule_maps_the_kde_concentration(monkeypatch, kde_kappa, kappa_max, features, base):
    monkeypatch.setattr(auto, "fit_kde", lambda train, val: KDEFit(kde_kappa, 0.05, 0.0))
    x = stats.uniform_direction(3).rvs(200, random_state=0)
    c = choose_settings(x[:150], x[150:])
    assert (c.kappa_max, c.space_frequencies, c.kernel, c.field_base) == (kappa_max, features, "fixed", base)
    assert (c.kde_kappa, c.kde_weight, c.held_out) == (kde_kappa, 0.05, "the validation split")
    assert ("clustered" if features else "smooth") in c.describe()
    # sharper than a network alone follows: the target keeps the KDE's sharpness, on the contraction field
    assert ("contraction field" in c.describe(("kappa_max", "field_base"))) == (base == "kernel")


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
    assert c.kappa_max == c.kde_kappa and c.field_base == ("kernel" if c.kde_kappa > KAPPA_CAP else "none")


def test_repeated_locations_get_the_sharpest_target_on_the_contraction_field():
    # Every held-out point repeats a training point: the best KDE is as sharp as the grid allows.
    x = stats.uniform_direction(3).rvs(100, random_state=2)
    c = choose_settings(np.concatenate([x, x]), x[:30])
    assert c.kde_kappa == 1e8 and c.kappa_max == 1e8 and c.field_base == "kernel"


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
    want = choose_settings(points.xyz[s.train], points.xyz[s.val], seed=0, adaptive=None)
    assert meta["auto"]["fields"] == ["kappa_max", "space_frequencies", "kernel", "field_base"]
    assert meta["auto"]["description"] == want.describe(("kappa_max", "space_frequencies", "kernel", "field_base"))
    assert meta["config"]["kernel"] == want.kernel == "fixed"  # clusters of one width: one bandwidth
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
    assert meta["auto"]["fields"] == ["space_frequencies", "kernel", "field_base"]
    assert "κ_max" not in meta["auto"]["description"]
    train(TrainConfig(data=data, steps=3, kappa_max=500.0, space_frequencies=0, kernel="fixed", field_base="none",
                      **TINY), tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "config.json").read_text())
    assert meta["auto"] is None and meta["config"]["space_frequencies"] == 0


# ----------------------------------------------------------------------------- the adaptive kernel (opt-in)
def _two_scales(n: int, seed: int) -> np.ndarray:
    """Half the points in a cluster a fraction of a degree wide (vMF 1e5), half in one ten degrees wide (vMF 30):
    no one bandwidth suits both."""
    rng = np.random.default_rng(seed)
    a, b = stats.uniform_direction(3).rvs(2, random_state=rng)
    x = np.concatenate([stats.vonmises_fisher(a, 1e5).rvs(n // 2, random_state=rng),
                        stats.vonmises_fisher(b, 30.0).rvs(n - n // 2, random_state=rng)])
    return x[rng.permutation(n)]


def test_adaptive_settings_are_read_only_when_asked():
    x = _two_scales(1500, seed=8)
    plain = choose_settings(x[:1200], x[1200:])
    assert plain.adaptive_gain is None and "bandwidths" not in plain.describe()
    c = choose_settings(x[:1200], x[1200:], adaptive=True)
    assert (c.kappa_max, c.space_frequencies) == (plain.kappa_max, plain.space_frequencies)  # the rest is the same
    fit = fit_adaptive_kde(x[:1200], x[1200:])
    assert (c.kernel_neighbours, c.kernel_scale) == (fit.neighbours, fit.scale)
    # on two scales the adaptive KDE is clearly better on validation, and the sentence says by how much
    assert c.adaptive_gain > 3 * c.adaptive_gain_se > 0
    text = c.describe(("kappa_max", "space_frequencies", "kernel_neighbours", "kernel_scale"))
    assert f"{c.adaptive_gain:+.2f} ± {c.adaptive_gain_se:.2f} nats" in text and "nearest neighbour" in text


def test_the_rule_picks_the_adaptive_kernel_only_where_one_bandwidth_is_clearly_worse(monkeypatch):
    two = _two_scales(1500, seed=8)
    c = choose_settings(two[:1200], two[1200:], adaptive=None)
    assert c.adaptive_gain > auto.ADAPTIVE_SWITCH and c.kernel == "adaptive"
    assert "nearest neighbour" in c.describe(("kappa_max", "kernel", "kernel_neighbours", "kernel_scale"))
    one = _clusters(1200, 1e5, seed=1)  # clusters of one width: the adaptive KDE gains little
    c = choose_settings(one[:1000], one[1000:], adaptive=None)
    assert c.adaptive_gain is not None and c.adaptive_gain < auto.ADAPTIVE_SWITCH and c.kernel == "fixed"
    assert f"one bandwidth (a bandwidth per point: {c.adaptive_gain:+.2f}" in c.describe(("kappa_max", "kernel"))
    # smooth data (the bundled mixture) are not even fitted for it: the classroom default starts as fast as before
    monkeypatch.setattr(auto, "fit_adaptive_kde", lambda *a: pytest.fail("fitted on smooth data"))
    x = DEFAULT_MIXTURE.sample(1500, seed=0)
    c = choose_settings(x[:1200], x[1200:], adaptive=None)
    assert (c.kernel, c.field_base, c.kappa_max, c.space_frequencies) == ("fixed", "none", KAPPA_MIN, 0)


def test_the_contraction_field_comes_with_an_adaptive_kernel_sharper_than_the_cap(monkeypatch):
    monkeypatch.setattr(auto, "fit_kde", lambda train, val: KDEFit(5000.0, 0.0, 0.0))
    x = stats.uniform_direction(3).rvs(1000, random_state=11)
    for scale, base in ((1e-3, "none"), (1e3, "kernel")):  # kappa_i = scale / r_k^2: about 300 and 3e8 (capped)
        monkeypatch.setattr(auto, "fit_adaptive_kde", lambda train, val, s=scale: AdaptiveKDEFit(3, s, 0.0, 0.0))
        c = choose_settings(x[:900], x[900:], adaptive=True)
        assert (c.kernel, c.field_base, c.kappa_max) == ("adaptive", base, 5000.0)


def test_the_field_base_follows_the_target_a_run_trains_on(tmp_path, single_thread):
    # repeated locations: the KDE wants kappa 1e8, sharper than a network alone follows
    x = stats.uniform_direction(3).rvs(150, random_state=14)
    data = _write(tmp_path / "repeats.csv", np.concatenate([x, x, x]))
    for name, options, base in (("ppd", {}, "kernel"), ("given", {"kappa_max": 1e4}, "none"),
                                ("rfm", {"objective": "rfm"}, "none")):
        train(TrainConfig(data=data, steps=2, **options, **TINY), tmp_path / name)
        config = json.loads((tmp_path / name / "config.json").read_text())["config"]
        assert config["field_base"] == base, name
    assert config["kappa_max"] == 1e8  # RFM records the rule's kappa (it has no target path)
    field, _ = load_field(tmp_path / "ppd")
    distinct = len(np.unique(np.load(tmp_path / "ppd" / "split.npz")["train"], axis=0))
    assert field.base is not None and field.base.centers.shape == (distinct, 3)  # rebuilt from the checkpoint


def test_adaptive_settings_read_distances_on_every_training_point(monkeypatch):
    seen = {}

    def fake(train, val):
        seen.update(train=train.shape, val=val.shape)
        return AdaptiveKDEFit(3, 3.0, 0.0, 0.0)

    monkeypatch.setattr(auto, "fit_adaptive_kde", fake)
    monkeypatch.setattr(auto, "fit_kde", lambda train, val: KDEFit(5000.0, 0.0, 0.0))
    monkeypatch.setattr(auto, "MAX_CENTRES", 500)
    x = stats.uniform_direction(3).rvs(1000, random_state=11)
    choose_settings(x[:900], x[900:], adaptive=True)
    assert seen == {"train": (900, 3), "val": (100, 3)}  # not the 500-point subsample of the fixed KDE


def test_training_with_the_adaptive_kernel_resumes_with_the_same_target(tmp_path, single_thread):
    data = _write(tmp_path / "two.csv", _two_scales(400, seed=9))
    run = tmp_path / "run"
    train(TrainConfig(data=data, steps=4, kernel="adaptive", **TINY), run)
    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["kernel"] == "adaptive"
    assert meta["auto"]["fields"] == ["kappa_max", "space_frequencies", "kernel_neighbours", "kernel_scale",
                                      "field_base"]
    assert "nearest neighbour" in meta["auto"]["description"]
    _, config = load_field(run)
    train_x = torch.as_tensor(np.load(run / "split.npz")["train"], dtype=torch.float32)
    path = build_path(config, train_x)
    assert path.scales is not None and float(path.scales.max()) > 10 * float(path.scales.min())
    # at t = 1 the target is the adaptive KDE with the config's floor
    x = torch.as_tensor(stats.uniform_direction(3).rvs(50, random_state=10), dtype=torch.float32)
    kappas = adaptive_kappas(train_x.double().numpy(), config.kernel_neighbours, config.kernel_scale)
    expected = kde_log_prob(x.double().numpy(), train_x.double().numpy(), kappas, config.floor)
    np.testing.assert_allclose(path.log_prob(x, 1.0).numpy(), expected, rtol=0, atol=2e-3)
    train(TrainConfig(steps=6), run, resume=True)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 6
    assert json.loads((run / "config.json").read_text())["config"]["kernel_scale"] == config.kernel_scale


def test_a_fixed_kernel_run_reads_nothing_for_the_adaptive_one(tmp_path, single_thread, monkeypatch):
    monkeypatch.setattr(auto, "fit_adaptive_kde", lambda *a: pytest.fail("fitted without being asked"))
    data = _write(tmp_path / "two.csv", _two_scales(300, seed=12))
    train(TrainConfig(data=data, steps=2, kernel="fixed", **TINY), tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert config["kernel"] == "fixed" and config["kernel_neighbours"] is None
    with pytest.raises(ValueError, match="kernel"):
        TrainConfig(kernel="wide").validate()


def test_old_configs_keep_their_adaptive_cap_and_one_feature_scale():
    # runs made before kernel_cap and space_scale_max existed were trained with 3e5 and one scale
    old = TrainConfig.from_dict({"data": "x.csv", "kernel": "adaptive", "kappa_max": 3000.0, "space_frequencies": 32})
    assert (old.kernel_cap, old.space_scale_max) == (3e5, None)
    assert (TrainConfig().kernel_cap, TrainConfig().space_scale_max) == (1e8, None)
    for bad in (dict(kernel_cap=5.0), dict(kernel_cap=float("inf")), dict(space_scale_max=-1.0)):
        with pytest.raises(ValueError):
            TrainConfig(**bad).validate()


@pytest.mark.parametrize("cap", [3e5, 1e8])
def test_the_adaptive_target_is_clipped_at_the_config_cap(cap):
    # pairs of points 10 m apart: a / r_1^2 = 3 / (1.6e-6)^2 is about 1e12, so every kernel sits at the cap
    rng = np.random.default_rng(13)
    base = stats.uniform_direction(3).rvs(20, random_state=rng)
    d = rng.standard_normal(base.shape)
    d -= (d * base).sum(1, keepdims=True) * base
    twins = base + (0.01 / 6371.0) * d / np.linalg.norm(d, axis=1, keepdims=True)
    train_x = torch.as_tensor(np.concatenate([base, twins / np.linalg.norm(twins, axis=1, keepdims=True)]))
    config = TrainConfig(kernel="adaptive", kappa_max=1e4, space_frequencies=0, kernel_neighbours=1, kernel_scale=3.0,
                         kernel_cap=cap)
    path = build_path(config, train_x)
    kappas = path.scales.numpy() * config.kappa_max  # rounded to 8 levels per doubling (steps of 9 %), at most the cap
    assert np.all(kappas <= cap * (1 + 1e-12)) and np.all(kappas > cap / 2 ** (1 / 8))
