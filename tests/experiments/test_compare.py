"""The comparison: variants and their settings (no Ray), and a tiny end-to-end run on blobs."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import yaml

from pauc_ray import evaluate
from pauc_ray.checkpoint import write_checkpoint
from pauc_ray.data import PrepareConfig, prepare
from pauc_ray.evaluation.report import EvalConfig
from pauc_ray.experiments import compare


def test_every_variant_shares_all_settings_but_the_loss(tmp_path):
    config = compare.CompareConfig(
        dataset="digits", seeds=(3,), epochs=4, ablation=True, out=str(tmp_path)
    )
    assert config.variants == (
        "moco",
        "pcl",
        "pauc",
        "pcl+p-align",
        "pcl+p-uniform",
        "pcl+p-corr",
    )
    configs = {v: compare.train_config_for(config, v, 3).to_dict() for v in config.variants}
    weights = {v: (c["method"], *(c["loss"][w] for w in ("alpha", "beta", "gamma"))) for v, c in configs.items()}  # fmt: skip
    assert weights["pcl+p-align"] == ("pauc", 1.0, 0.0, 0.0)
    assert weights["pcl+p-uniform"] == ("pauc", 0.0, 1.0, 0.0)
    assert weights["pcl+p-corr"] == ("pauc", 0.0, 0.0, 0.1)
    assert weights["pauc"] == ("pauc", 1.0, 1.0, 0.1) and weights["pcl"][0] == "pcl"

    def shared(c):
        rest = {k: v for k, v in c.items() if k not in ("method", "name", "loss")}
        loss = {k: v for k, v in c["loss"].items() if k not in ("alpha", "beta", "gamma")}
        return rest, loss

    first = shared(configs["moco"])
    assert all(shared(c) == first for c in configs.values())
    # flags given win; what is not given comes from the dataset's shipped recipe
    assert first[0]["seed"] == 3 and first[0]["epochs"] == 4
    assert first[0]["recipe"] == "digits" and first[0]["backbone"] == "convnet"
    assert first[0]["batch_size"] == 128 and first[1]["warmup_epochs"] == 10
    no_recipe = compare.CompareConfig(dataset="digits", seeds=(3,), epochs=4, recipe="none")
    plain = compare.train_config_for(no_recipe, "moco", 3)
    assert plain.recipe is None and plain.backbone == "auto" and plain.batch_size == 256
    assert len({c["name"] for c in configs.values()}) == len(configs)


def test_the_table_gets_one_row_per_baseline_one_value_per_seed():
    def row(variant, seed, knn, raw, initial):
        return {
            "variant": variant,
            "seed": seed,
            "error": None,
            "knn20_top1": knn,
            "raw_knn20_top1": raw,
            "random_init_knn20_top1": initial,
        }

    rows = [
        row("moco", 0, 87.0, 84.5, 83.0),
        row("pcl", 0, 87.5, 84.5, 83.0),  # the same seed: the same baselines, counted once
        row("moco", 1, 86.0, 84.5, 82.0),
    ]
    summary = {s["variant"]: s for s in compare.summarize(rows)}
    assert summary["moco"]["knn20_top1_mean"] == 86.5 and summary["moco"]["seeds"] == 2
    assert summary["raw input"]["seeds"] == 2 and summary["raw input"]["knn20_top1_mean"] == 84.5
    assert summary["random init"]["knn20_top1_mean"] == 82.5
    assert summary["random init"]["linear_top1_mean"] is None  # kNN columns only
    table = compare.format_table(
        list(summary.values()), compare.CompareConfig(dataset="digits", seeds=(0, 1))
    )
    assert "| raw input | 2 | 84.50 ± 0.00 |" in table
    assert "| random init | 2 | 82.50 ± 0.71 |" in table


def test_a_run_with_a_checkpoint_but_no_summary_is_resumed(tmp_path, monkeypatch):
    from pauc_ray.train import driver

    calls = []
    monkeypatch.setattr(
        driver,
        "run_training",
        lambda cfg, resume=None, **kw: calls.append(resume) or {"x": 1},
    )
    config = compare.CompareConfig(dataset="digits", out=str(tmp_path))
    train_config = compare.train_config_for(config, "pauc", 0)
    run_dir = tmp_path / "runs" / train_config.name
    assert compare._train(train_config) == {"x": 1} and calls == [None]  # fresh
    write_checkpoint(run_dir / "checkpoint_epoch_00001", {"epoch": 1}, 1)
    compare._train(train_config)
    assert calls[-1] == str(run_dir)  # interrupted: resumed
    (run_dir / "summary.json").write_text(json.dumps({"error": None, "export": "e"}))
    assert compare._train(train_config) == {"error": None, "export": "e"}
    assert len(calls) == 2  # finished: not trained again
    (run_dir / "config.json").write_text(train_config.to_json())
    assert compare._train(train_config) == {"error": None, "export": "e"}
    older = json.loads(train_config.to_json())
    del older["precision"]  # saved before the setting existed: it counts as its default
    (run_dir / "config.json").write_text(json.dumps(older))
    assert compare._train(train_config) == {"error": None, "export": "e"}
    older["precision"] = "bf16"
    (run_dir / "config.json").write_text(json.dumps(older))
    with pytest.raises(ValueError, match=r"other settings \(precision\)"):
        compare._train(train_config)
    # where and how it ran (the memory format, another checkout's data folder) is the same run
    elsewhere = {**json.loads(train_config.to_json()), "channels_last": False}
    elsewhere["data_dir"] = "/another/checkout/data"
    (run_dir / "config.json").write_text(json.dumps(elsewhere))
    assert compare._train(train_config) == {"error": None, "export": "e"}
    (run_dir / "config.json").write_text(train_config.to_json())
    other = compare.train_config_for(dataclasses.replace(config, epochs=7), "pauc", 0)
    with pytest.raises(ValueError, match=r"other settings \(epochs\)"):
        compare._train(other)  # another --epochs into the same --out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--epochs", "0"], "epochs"),
        (["--config", "/no/such.yaml"], "no such file"),
        (["--dataset", "cifar"], "expected one of"),
        (["--batch-size", "0"], "batch_size"),
    ],
)
def test_bad_arguments_exit_2(argv, words, tmp_path, capsys):
    assert compare.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0]


@pytest.mark.ray
@pytest.mark.slow
def test_tiny_comparison_trains_evaluates_and_continues(ray_cluster, tmp_path, capsys):
    data = tmp_path / "blobs"
    prepare("blobs", data, PrepareConfig(classes=4, samples_per_class=150, progress=False))
    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump(
            {
                "embedding_dim": 2,
                "queue_size": 128,
                "eval_max_samples": 480,
                "kmeans": {"num_clusters": [4, 8], "nredo": 1},
            }
        )
    )
    out = tmp_path / "compare"
    argv = [
        *("--dataset", f"parquet:{data}", "--methods", "moco", "pauc", "--seeds", "0"),
        *("--epochs", "2", "--warmup-epochs", "1", "--batch-size", "64", "--workers", "1"),
        *("--config", str(base), "--out", str(out)),
    ]
    assert compare.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {r["variant"]: r for r in results["runs"]}
    assert set(rows) == {"moco", "pauc"}
    for row in rows.values():
        assert row["error"] is None and row["epochs_completed"] == 2
        assert 25 < row["knn20_top1"] <= 100 and 25 < row["linear_top1"] <= 100  # chance: 25
        assert 0 < row["nemd_nn"] <= row["nemd"] + 1e-9 and row["nemd_num_clusters"] == 4
        assert row["wall_seconds"] > 0
        eval_dir = out / "eval" / compare.run_name(row["variant"], 0)
        for name in ("eval.json", "tsne.png", "nemd_k4.png", "nemd_k8.png", "unit_circle.png"):
            assert (eval_dir / name).is_file(), name
    configs = [
        json.loads((out / "runs" / compare.run_name(v, 0) / "config.json").read_text())
        for v in ("moco", "pauc")
    ]
    for c in configs:
        del c["method"], c["name"]
    assert configs[0] == configs[1]  # only the loss differs
    table = (out / "table.md").read_text()
    assert "| moco | 1 |" in table and "| pauc | 1 |" in table
    assert "| raw input | 1 |" in table and "| random init | 1 |" in table
    assert (out / "figure.png").stat().st_size > 10_000
    summary = {s["variant"]: s for s in results["summary"]}
    assert summary["pauc"]["linear_top1_mean"] == rows["pauc"]["linear_top1"]

    # the same command again trains and evaluates nothing
    stamps = sorted(p.stat().st_mtime_ns for p in out.rglob("*.json") if "eval" in p.parts)
    summaries = sorted(p.stat().st_mtime_ns for p in out.rglob("summary.json"))
    assert compare.main(argv) == 0
    assert sorted(p.stat().st_mtime_ns for p in out.rglob("summary.json")) == summaries
    assert sorted(p.stat().st_mtime_ns for p in out.rglob("*.json") if "eval" in p.parts) == stamps
    assert json.loads((out / "results.json").read_text())["runs"] == results["runs"]

    # only the records a repository keeps (experiments/.gitignore: no weights, checkpoints or
    # caches), in another folder: reused as they are, nothing trained or evaluated again
    kept = shutil.ignore_patterns(
        "checkpoint_*", "clustering", "export", "tensorboard", ".validate_storage_marker"
    )
    moved = tmp_path / "elsewhere" / "compare"
    shutil.copytree(out, moved, ignore=kept)
    moved_argv = [*argv[:-1], str(moved)]
    assert compare.main(moved_argv) == 0
    assert not list(moved.rglob("checkpoint_*")) and not list(moved.rglob("export"))
    again = json.loads((moved / "results.json").read_text())["runs"]
    for old, new in zip(results["runs"], again):
        assert new["run_dir"] == str(moved / "runs" / compare.run_name(old["variant"], 0))
        assert {k: v for k, v in new.items() if k not in ("run_dir", "eval_dir")} == {
            k: v for k, v in old.items() if k not in ("run_dir", "eval_dir")
        }

    # python -m pauc_ray.evaluate on a trained run folder gives the comparison's numbers
    capsys.readouterr()
    run_dir = rows["pauc"]["run_dir"]
    assert evaluate.main([run_dir, "--out", str(tmp_path / "eval")]) == 0
    again = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert again["summary"] == json.loads((out / "eval" / "pauc-seed0" / "eval.json").read_text())["summary"]  # fmt: skip
    assert again["method"] == "pauc" and again["epoch"] == 2


def test_ablation_variants_run_their_own_seeds():
    config = compare.CompareConfig(
        methods=("moco", "pcl", "pauc"), seeds=(0, 1, 2), ablation=True, ablation_seeds=(0, 1)
    )
    runs = config.runs()
    assert runs[:6] == [
        ("moco", 0), ("pcl", 0), ("pauc", 0),
        ("pcl+p-align", 0), ("pcl+p-uniform", 0), ("pcl+p-corr", 0),
    ]  # fmt: skip
    assert ("pcl", 2) in runs and ("pcl+p-align", 2) not in runs
    assert len(runs) == 3 * 3 + 3 * 2 and len(set(runs)) == len(runs)
    assert compare.CompareConfig(seeds=(0, 1), ablation=True).runs().count(("pcl+p-corr", 1)) == 1


def test_paired_test_is_the_t_test_of_per_seed_differences():
    def row(variant, seed, knn, nemd):
        return {"variant": variant, "seed": seed, "error": None, "knn20_top1": knn, "nemd": nemd}

    rows = [
        row("pcl", 0, 86.0, 0.80), row("pauc", 0, 86.5, 0.90),
        row("pcl", 1, 85.0, 0.80), row("pauc", 1, 86.5, 0.85),
        row("pcl", 2, 86.0, 0.80), row("pauc", 2, 86.0, 0.95),
        row("pauc", 3, 99.0, 0.99),  # no PCL run of seed 3: not paired
    ]  # fmt: skip
    tests = {t["metric"]: t for t in compare.paired_tests(rows) if t["variant"] == "pauc"}
    knn = tests["knn20_top1"]
    assert knn["seeds"] == [0, 1, 2] and knn["differences"] == [0.5, 1.5, 0.0]
    # t = mean(d) / (sd(d) / sqrt(n)) with n - 1 = 2 degrees of freedom, by hand
    d = [0.5, 1.5, 0.0]
    mean = sum(d) / 3
    sd = (sum((x - mean) ** 2 for x in d) / 2) ** 0.5
    t = mean / (sd / 3**0.5)
    assert abs(knn["mean_difference"] - mean) < 1e-12 and abs(knn["std_difference"] - sd) < 1e-12
    # two-sided p of Student's t with 2 degrees of freedom: 1 - |t| / sqrt(t^2 + 2)
    assert abs(knn["p_value"] - (1 - abs(t) / (t * t + 2) ** 0.5)) < 1e-9
    assert "linear_top1" not in tests  # not measured: not tested
    table = compare.format_paired(compare.paired_tests(rows))
    assert "| pauc | kNN@20 top-1 (%) | 3 | +0.6667 |" in table
    assert "no significant difference" in table


def test_curves_average_the_seeds_of_each_variant(tmp_path):
    rows = []
    for variant, seed, values in (
        ("pcl", 0, [80, 84]),
        ("pcl", 1, [82, 86]),
        ("moco", 0, [81, 83]),
    ):
        run = tmp_path / f"{variant}-{seed}"
        run.mkdir()
        history = [
            {"epoch": 3 * (i + 1), "knn_top1": v, "raw_knn_top1": 84.0}
            for i, v in enumerate(values)
        ]
        (run / "history.json").write_text(json.dumps(history))
        rows.append({"variant": variant, "seed": seed, "error": None, "run_dir": str(run)})
    assert compare.draw_curves(rows, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = [{"variant": "pcl", "seed": 0, "error": None, "run_dir": str(tmp_path / "none")}]
    assert not compare.draw_curves(empty, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_a_stored_evaluation_is_reused_only_when_its_numbers_would_be_the_same():
    settings = json.loads(json.dumps(dataclasses.asdict(EvalConfig()), default=str))
    stored = {"model": "/old/checkout/runs/pauc-seed0/export", "settings": settings}
    here = "/new/checkout/runs/pauc-seed0/export"
    assert compare.evaluated_alike(stored, EvalConfig(), here)
    # where the encoder ran and its batch change no number: an evaluation at batch 1024 on
    # another device is still this one
    older = {**stored, "settings": {**settings, "batch_size": 1024, "device": "cuda"}}
    assert compare.evaluated_alike(older, EvalConfig(), here)
    # any setting in the numbers, or another run's export, is evaluated again
    assert not compare.evaluated_alike(stored, EvalConfig(knn_ks=(10,)), here)
    assert not compare.evaluated_alike(stored, EvalConfig(seed=1), here)
    assert not compare.evaluated_alike(stored, EvalConfig(), "/x/runs/pauc-seed1/export")
    assert not compare.evaluated_alike({"settings": settings}, EvalConfig(), here)
