"""The clustering actor on the shared local Ray cluster."""

from __future__ import annotations

import numpy as np
import pytest

from cluster.actor import create_cluster_actor
from cluster.config import KMeansConfig

pytestmark = pytest.mark.ray

CONFIG = KMeansConfig(num_clusters=(3, 6), niter=10, nredo=1, seed=0, use_gpu=False)


def blob_features(n=300, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8)) * 5
    labels = np.arange(n) % 3
    x = (centres[labels] + rng.normal(size=(n, 8))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def shards(x, world_size):
    ids = np.arange(len(x))
    return [(x[part], part) for part in np.array_split(ids, world_size)]


def test_all_workers_get_the_same_result_once(ray_cluster, tmp_path):
    ray = ray_cluster
    x, labels = blob_features()
    actor = create_cluster_actor(len(x), CONFIG, cache_dir=str(tmp_path))
    refs = [
        actor.cluster.remote(0, "g", rank, 3, feats, ids)
        for rank, (feats, ids) in enumerate(shards(x, 3))
    ]
    inner = [ray.get(r)[0] for r in refs]
    assert len({ref.hex() for ref in inner}) == 1  # one object for every worker
    result = ray.get(inner[0])
    np.testing.assert_array_equal(result.ids, np.arange(len(x)))
    assert result.num_clusters == (3, 6)
    # the 3 true blobs are found
    a = result.clusterings[0].assignments
    assert len({(int(a[i]), int(labels[i])) for i in range(len(x))}) == 3
    assert ray.get(actor.num_clusterings_run.remote()) == 1
    # asking again for the same epoch (a restarted worker group) does not recluster
    again = ray.get(actor.cluster.remote(0, "g2", 0, 1, x[:5], np.arange(5)))[0]
    assert ray.get(again).ids.shape == (len(x),)
    assert ray.get(actor.num_clusterings_run.remote()) == 1
    assert (tmp_path / "epoch_00000.npz").exists()
    ray.kill(actor)


@pytest.mark.parametrize("problem", ["missing", "duplicate"])
def test_every_worker_hears_of_bad_ids(ray_cluster, problem):
    ray = ray_cluster
    x, _ = blob_features(60)
    actor = create_cluster_actor(len(x), CONFIG)
    (f0, i0), (f1, i1) = shards(x, 2)
    if problem == "missing":
        f1, i1 = f1[:-2], i1[:-2]
    else:
        f1, i1 = np.concatenate([f1, f0[:1]]), np.concatenate([i1, i0[:1]])
    refs = [actor.cluster.remote(0, "g", 0, 2, f0, i0), actor.cluster.remote(0, "g", 1, 2, f1, i1)]
    for ref in refs:
        with pytest.raises(Exception, match="exactly once"):
            ray.get(ref)
    ray.kill(actor)


def test_actor_killed_mid_epoch_is_restarted_and_the_epoch_completes(ray_cluster, tmp_path):
    ray = ray_cluster
    x, _ = blob_features()
    actor = create_cluster_actor(len(x), CONFIG, cache_dir=str(tmp_path))
    (f0, i0), (f1, i1) = shards(x, 2)
    first_pid = ray.get(actor.pid.remote())
    waiting = actor.cluster.remote(1, "g", 0, 2, f0, i0)  # rank 0 waits for rank 1
    ray.kill(actor, no_restart=False)
    second = actor.cluster.remote(1, "g", 1, 2, f1, i1)
    r0, r1 = ray.get([waiting, second], timeout=120)
    assert ray.get(r0[0]).ids.shape == (len(x),)
    assert r0[0].hex() == r1[0].hex()
    assert ray.get(actor.pid.remote()) != first_pid
    # the finished epoch survives another restart through the disk cache
    ray.kill(actor, no_restart=False)
    cached = ray.get(actor.cached.remote(1), timeout=60)
    assert cached is not None and ray.get(cached[0]).num_samples == len(x)
    assert ray.get(actor.num_clusterings_run.remote()) == 0
    ray.kill(actor)


def test_a_new_group_supersedes_a_dead_one(ray_cluster):
    ray = ray_cluster
    x, _ = blob_features(90)
    actor = create_cluster_actor(len(x), CONFIG)
    (f0, i0), _ = shards(x, 2)
    # tokens sort by the time their group formed; arrival order must not matter
    stale = actor.cluster.remote(0, "0001-old", 0, 2, f0, i0)  # its partner died
    fresh = actor.cluster.remote(0, "0002-new", 0, 1, x, np.arange(len(x)))
    assert ray.get(ray.get(fresh)[0]).num_samples == len(x)
    with pytest.raises(Exception, match="superseded"):
        ray.get(stale)
    ray.kill(actor)
