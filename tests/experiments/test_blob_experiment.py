import json

import numpy as np

from pauc_ray.experiments import blobs


def test_tiny_run_writes_every_output(tmp_path, capsys):
    out = tmp_path / "blobs"
    code = blobs.main(
        [
            "--classes",
            "3",
            "4",
            "--methods",
            "moco",
            "pauc",
            "--epochs",
            "3",
            "--samples-per-class",
            "60",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    rows = json.loads((out / "results.json").read_text())
    assert {(r["classes"], r["method"]) for r in rows} == {
        (3, "moco"),
        (3, "pauc"),
        (4, "moco"),
        (4, "pauc"),
    }
    for r in rows:
        assert set(r) >= {"classes", "method", "seed", "nemd", "nemd_nn", "knn_top1"}
        assert 0 < r["nemd_nn"] <= r["nemd"] + 1e-9
        assert 0 <= r["knn_top1"] <= 100
    npz = np.load(out / "embeddings" / "pauc_4_0.npz")
    assert npz["embedding"].shape == (240, 2)
    np.testing.assert_allclose(np.linalg.norm(npz["embedding"], axis=1), 1, atol=1e-5)
    assert npz["label"].shape == npz["assignment"].shape == (240,)
    assert set(np.unique(npz["assignment"])) <= set(range(4))
    assert (out / "figure.png").stat().st_size > 10_000
    table = capsys.readouterr().out
    assert "| 4 | pauc |" in table


def test_same_seed_same_result():
    config = blobs.BlobExperimentConfig(epochs=3, samples_per_class=40)
    a = blobs.run_one(3, "pauc", 0, config)
    b = blobs.run_one(3, "pauc", 0, config)
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert a.row["nemd"] == b.row["nemd"]


def test_bad_arguments_exit_2(tmp_path):
    assert blobs.main(["--epochs", "0", "--out", str(tmp_path)]) == 2
