import numpy as np
import pytest
import torch

from pauc_ray.evaluation.linear_probe import LinearProbeConfig, linear_probe, whiten


def _blobs(rng, n, classes=5, dim=16, spread=10.0):
    centres = rng.normal(size=(classes, dim)) * spread
    labels = rng.integers(0, classes, size=n)
    return centres[labels] + rng.normal(size=(n, dim)), labels


def test_separated_blobs_are_recovered(rng):
    x, y = _blobs(rng, 600)
    res = linear_probe(x[:400], y[:400], x[400:], y[400:])
    assert res.top1 == pytest.approx(100.0)
    assert res.top5 == pytest.approx(100.0)
    assert res.num_classes == 5 and res.train_top1 == pytest.approx(100.0)


def test_random_features_give_chance_level(rng):
    x = rng.normal(size=(4000, 8))
    y = rng.integers(0, 10, size=4000)
    res = linear_probe(x[:2000], y[:2000], x[2000:], y[2000:])
    assert 6.0 < res.top1 < 14.0  # chance is 10%
    assert 40.0 < res.top5 < 60.0  # chance is 50%


def test_same_seed_same_result_and_seed_drives_the_validation_split(rng):
    x, y = _blobs(rng, 800, classes=4, spread=0.6)
    a = linear_probe(x[:600], y[:600], x[600:], y[600:], LinearProbeConfig(seed=3))
    b = linear_probe(x[:600], y[:600], x[600:], y[600:], LinearProbeConfig(seed=3))
    c = linear_probe(x[:600], y[:600], x[600:], y[600:], LinearProbeConfig(seed=4))
    assert (a.top1, a.top5, a.validation_top1) == (b.top1, b.top5, b.validation_top1)
    assert a.validation_top1 != c.validation_top1  # another held-out share
    assert set(a.validation_top1) == {"1e-06", "0.0001", "0.01"}


def test_matches_scikit_learn_logistic_regression(rng):
    """The same objective (mean cross-entropy + lambda/2 ||W||^2 on whitened features) as
    scikit-learn's with C = 1 / (N lambda): the fitted classifiers agree on the test points."""
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs(rng, 700, classes=4, dim=6, spread=0.8)
    x[:, 1] = x[:, 0] + 0.1 * x[:, 1]  # correlated dimensions, as in learned embeddings
    xtr, ytr, xte, yte = x[:500], y[:500], x[500:], y[500:]
    decay = 1e-2
    res = linear_probe(xtr, ytr, xte, yte, LinearProbeConfig(weight_decays=(decay,)))
    wtr, wte = (t.numpy() for t in whiten(torch.as_tensor(xtr), torch.as_tensor(xte)))
    reference = LogisticRegression(C=1.0 / (len(xtr) * decay), max_iter=5000, tol=1e-10)
    expected = 100.0 * (reference.fit(wtr, ytr).predict(wte) == yte).mean()
    assert 20.0 < expected < 100.0  # a problem where the two could disagree
    assert res.top1 == pytest.approx(expected, abs=0.5)  # at most one test point apart
    assert res.validation_top1 == {} and res.weight_decay == decay


def test_whitening_gives_identity_covariance_on_train(rng):
    x = rng.normal(size=(2000, 5)) @ rng.normal(size=(5, 5)) + 3.0
    white, other = whiten(torch.as_tensor(x), torch.as_tensor(x[:10]))
    np.testing.assert_allclose(np.cov(white.numpy().T), np.eye(5), atol=1e-4)
    np.testing.assert_allclose(other.numpy(), white.numpy()[:10], atol=1e-5)


def test_thread_setting_is_restored(rng):
    x, y = _blobs(rng, 200)
    before = torch.get_num_threads()
    linear_probe(x[:100], y[:100], x[100:], y[100:], LinearProbeConfig(num_threads=1))
    assert torch.get_num_threads() == before


def test_bad_inputs():
    with pytest.raises(ValueError, match="train_features"):
        linear_probe(np.zeros((3, 2)), [0, 1, 2], np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="one label per"):
        linear_probe(np.ones((3, 2)), [0, 1], np.ones((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="unlabelled"):
        linear_probe(np.ones((3, 2)), [0, 1, -1], np.ones((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="weight_decays"):
        LinearProbeConfig(weight_decays=())
