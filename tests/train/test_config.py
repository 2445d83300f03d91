import json

import pytest

from pauc_ray.train.config import TrainConfig, build_parser, config_from_args, from_dict


def parse(*argv):
    return config_from_args(build_parser().parse_args(list(argv)))


def test_defaults_and_overrides(tmp_path):
    assert parse() == TrainConfig()
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
