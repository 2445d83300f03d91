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


def test_a_stopped_experiment_goes_on_where_it_stopped(tmp_path, monkeypatch):
    out = tmp_path / "blobs"
    args = ["--classes", "3", "--methods", "moco", "--epochs", "2", "--samples-per-class", "40"]
    args += ["--out", str(out), "--quiet"]
    assert blobs.main([*args, "--seeds", "1"]) == 0
    first = json.loads((out / "results.json").read_text())
    trained = []
    real_run_one = blobs.run_one

    def counting_run_one(classes, method, seed, config, progress=True):
        trained.append((classes, method, seed))
        return real_run_one(classes, method, seed, config, progress=progress)

    monkeypatch.setattr(blobs, "run_one", counting_run_one)
    assert blobs.main([*args, "--seeds", "2"]) == 0  # one more seed: only it trains
    assert trained == [(3, "moco", 1)]
    rows = json.loads((out / "results.json").read_text())
    assert rows[0] == first[0] and [r["seed"] for r in rows] == [0, 1]
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert summary[0]["seeds"] == 2
    # other settings in the same folder: refused, nothing overwritten
    assert blobs.main([*args, "--seeds", "2", "--epochs", "3"]) == 2
    assert json.loads((out / "results.json").read_text()) == rows
