import numpy as np
import pytest

from pauc_ray.evaluation.knn import knn_classify


def test_separated_blobs_are_recovered(rng):
    centres = rng.normal(size=(5, 16)) * 10
    labels = rng.integers(0, 5, size=400)
    x = centres[labels] + rng.normal(size=(400, 16))
    res = knn_classify(x[:200], labels[:200], x[200:], labels[200:], k=10)
    assert res.top1 == pytest.approx(100.0)
    assert res.top5 == pytest.approx(100.0)


def test_random_features_give_chance_level(rng):
    x = rng.normal(size=(4000, 8))
    labels = rng.integers(0, 10, size=4000)
    res = knn_classify(x[:2000], labels[:2000], x[2000:], labels[2000:], k=20)
    assert 6.0 < res.top1 < 14.0  # chance is 10%
    assert 40.0 < res.top5 < 60.0  # chance is 50%


def test_matches_slow_reference(rng):
    x = rng.normal(size=(60, 4))
    labels = rng.integers(0, 3, size=60)
    res = knn_classify(x[:40], labels[:40], x[40:], labels[40:], k=5, temperature=0.5)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    correct = 0
    for i in range(40, 60):
        sims = [(float(xn[i] @ xn[j]), labels[j]) for j in range(40)]
        sims.sort(key=lambda t: -t[0])
        votes = [0.0, 0.0, 0.0]
        for s, lab in sims[:5]:
            votes[lab] += np.exp(s / 0.5)
        correct += int(np.argmax(votes) == labels[i])
    assert res.top1 == pytest.approx(100.0 * correct / 20)


def test_bad_inputs():
    with pytest.raises(ValueError, match="train_features"):
        knn_classify(np.zeros((3, 2)), [0, 1, 2], np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="labels"):
        knn_classify(np.ones((3, 2)), [0, 1], np.ones((2, 2)), [0, 1])
