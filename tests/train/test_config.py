import json

import pytest

from pauc_ray.config_io import from_dict
from pauc_ray.train.config import TrainConfig, build_parser, config_from_args


def parse(*argv):
    return config_from_args(build_parser().parse_args(list(argv)))


def test_defaults_and_overrides(tmp_path):
    # no flags: the dataclass defaults, then the default dataset's shipped recipe (digits)
    from pauc_ray.recipes import load_recipe
    from pauc_ray.train.config import resolve_config

    _, recipe = load_recipe("digits")
    assert parse() == resolve_config({}) == from_dict(TrainConfig, {**recipe, "recipe": "digits"})
    assert parse("--recipe", "none") == TrainConfig()
    assert parse().epochs == recipe["epochs"] and parse("--epochs", "7").epochs == 7
    cfg = parse(
        "--epochs",
        "3",
        "--num-clusters",
        "5,10",
        "--loss.alpha",
        "0.5",
        "--workers",
        "1:4",
        "--method",
        "pcl",
        "--nemd.max-points",
        "none",
    )
    assert cfg.epochs == 3 and cfg.kmeans.num_clusters == (5, 10) and cfg.loss.alpha == 0.5
    assert cfg.worker_range == (1, 4) and cfg.method == "pcl" and cfg.nemd.max_points is None


def test_yaml_file_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nloss:\n  beta: 0.25\nkmeans:\n  num_clusters: [3, 6]\n")
    cfg = parse("--config", str(path), "--epochs", "9")
    assert cfg.epochs == 9 and cfg.loss.beta == 0.25 and cfg.kmeans.num_clusters == (3, 6)
    assert cfg.loss.alpha == TrainConfig().loss.alpha


def test_speed_and_elasticity_flags():
    cfg = parse("--channels-last", "true", "--compile", "true", "--elastic-resize-interval-s", "5")
    assert cfg.channels_last and cfg.compile and cfg.elastic_resize_interval_s == 5.0
    default = parse()
    assert default.channels_last is None and not default.compile  # None: on CPUs only
    assert default.elastic_resize_interval_s == 60.0


def test_round_trip_through_dict():
    cfg = parse("--seed", "3", "--augment.crop-scale", "0.3,1.0")
    assert from_dict(TrainConfig, cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "workers"),
        (["--workers", "3:2"], "workers"),
        (["--method", "simclr"], "method"),
        (["--epochs", "x"], "epochs"),
        (["--loss.temperature", "-1"], "temperature"),
        (["--backbone", "vgg"], "backbone"),
        (["--elastic-resize-interval-s", "0"], "elastic_resize_interval_s"),
        (["--channels-last", "maybe"], "channels_last"),
        (["--train-max-samples", "0"], "train_max_samples"),
    ],
)
def test_bad_values_name_the_setting(argv, message):
    with pytest.raises(ValueError, match=message):
        parse(*argv)


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochz: 3\n")
    with pytest.raises(ValueError, match="epochz"):
        parse("--config", str(path))


def test_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in (
        "--dataset",
        "--method",
        "--epochs",
        "--batch-size",
        "--workers",
        "--num-clusters",
        "--seed",
        "--storage",
        "--loss.alpha",
        "--kmeans.niter",
        "--nemd.epsilon",
        "--augment.crop-scale",
        "--resume",
        "--config",
    ):
        assert flag in text
    assert "(default: digits)" in text and "(default: ./runs)" in text


def test_concentration_mean_follows_the_temperature_unless_given():
    cfg = parse("--loss.temperature", "0.1")
    assert cfg.kmeans.concentration_mean is None
    assert cfg.clustering.concentration_mean == 0.1
    given = parse("--loss.temperature", "0.1", "--kmeans.concentration-mean", "0.3")
    assert given.clustering.concentration_mean == 0.3
    # the saved config round-trips the unset value
    assert from_dict(TrainConfig, json.loads(cfg.to_json())).clustering == cfg.clustering


def test_recipes_ship_and_load_by_name_path_or_not_at_all(tmp_path):
    from pauc_ray.recipes import load_recipe, shipped_recipes

    assert {"digits", "fashion-mnist"} <= set(shipped_recipes())
    for name in shipped_recipes():  # every shipped recipe is a valid TrainConfig
        assert parse("--recipe", name).recipe == name
    assert parse("--dataset", "fashion-mnist").recipe == "fashion-mnist"  # auto: by dataset
    assert parse("--dataset", "blobs").recipe is None  # none ships for blobs
    mine = tmp_path / "mine.yaml"
    mine.write_text("epochs: 5\nloss:\n  alpha: 0.25\n")
    cfg = parse("--recipe", str(mine), "--loss.beta", "0.5")
    assert (cfg.epochs, cfg.loss.alpha, cfg.loss.beta, cfg.recipe) == (5, 0.25, 0.5, str(mine))
    config_file = tmp_path / "c.yaml"
    config_file.write_text("epochs: 6\n")
    assert parse("--recipe", str(mine), "--config", str(config_file)).epochs == 6  # file wins
    with pytest.raises(ValueError, match="--recipe nope: neither a shipped recipe"):
        parse("--recipe", "nope")
    assert load_recipe("digits", "none") == (None, {})


def test_final_report_reads_trained_against_both_baselines():
    from pauc_ray.train.__main__ import final_report

    summary = {"knn_top1": 97.8, "raw_knn_top1": 96.9, "random_init_knn_top1": 93.6}
    lines = final_report({**summary, "representation": "backbone", "backbone": "convnet"})
    assert "97.80" in lines[1] and "96.94" not in lines[2] and "96.90" in lines[2]
    assert lines[-1].strip() == "pretraining beat both baselines"
    worse = final_report({**summary, "knn_top1": 95.0})
    assert "did NOT beat" in worse[-1]
    assert "not evaluated" in final_report({"knn_top1": None})[0]
