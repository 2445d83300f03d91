"""service.settings and the ``python -m service`` start-up checks."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from service.__main__ import build_parser
from service.settings import ServiceSettings, SettingsError, env_name, settings_from


def from_argv(argv: list[str], environ: dict[str, str]) -> ServiceSettings:
    return settings_from(build_parser().parse_args(argv), environ)


def test_defaults_env_and_flags(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    defaults = from_argv(["--models", str(tmp_path)], {})
    assert defaults.models == tmp_path.resolve()
    assert (defaults.host, defaults.port, defaults.max_batch) == ("127.0.0.1", 8000, 64)
    assert defaults.api_key is None and defaults.micro_batching
    env = {
        "PAUC_SERVICE_MODELS": str(other),
        "PAUC_SERVICE_PORT": "9001",
        "PAUC_SERVICE_MAX_BATCH": "1",
        "PAUC_SERVICE_ACCESS_LOG": "off",
        "PAUC_API_KEY": "s3cret",
    }
    from_env = from_argv([], env)
    assert from_env.models == other.resolve() and from_env.port == 9001
    assert not from_env.micro_batching and not from_env.access_log
    assert from_env.api_key == "s3cret"
    # a flag wins over the environment
    both = from_argv(["--models", str(tmp_path), "--port", "9002", "--access-log"], env)
    assert both.models == tmp_path.resolve() and both.port == 9002 and both.access_log
    assert "s3cret" not in str(both.public()) and both.public()["api_key"] == "set"


def test_every_setting_has_an_env_var_and_a_flag():
    parser = build_parser()
    flags = {a.dest for a in parser._actions if isinstance(a, argparse.Action)}
    for name in ServiceSettings.model_fields:
        assert env_name(name).startswith("PAUC_")
        assert name in flags or name == "api_key"  # never a flag: it would show in ps


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        ([], {}, "--models ROOT or PAUC_SERVICE_MODELS"),
        (["--models", "/no/such/folder"], {}, "--models / PAUC_SERVICE_MODELS"),
        (["--models", "ROOT", "--port", "eighty"], {}, "--port: expected an integer"),
        ([], {"PAUC_SERVICE_MODELS": "ROOT", "PAUC_SERVICE_PORT": "x"}, "PAUC_SERVICE_PORT"),
        (["--models", "ROOT", "--port", "70000"], {}, "--port / PAUC_SERVICE_PORT"),
        (["--models", "ROOT", "--max-batch", "0"], {}, "--max-batch / PAUC_SERVICE_MAX_BATCH"),
        (["--models", "ROOT", "--max-wait-ms", "nan"], {}, "--max-wait-ms / PAUC_SERVICE_MAX"),
        (["--models", "ROOT"], {"PAUC_SERVICE_ACCESS_LOG": "maybe"}, "expected a boolean"),
        (["--models", "ROOT", "--log-level", "loud"], {}, "--log-level / PAUC_SERVICE_LOG"),
        (["--models", "ROOT"], {"PAUC_API_KEY": "  "}, "PAUC_API_KEY is set but empty"),
        (["--models", "ROOT", "--device", "tpu"], {}, "--device / PAUC_SERVICE_DEVICE"),
    ],
)
def test_bad_settings_are_named(tmp_path, argv, environ, named):
    argv = [str(tmp_path) if a == "ROOT" else a for a in argv]
    environ = {k: str(tmp_path) if v == "ROOT" else v for k, v in environ.items()}
    with pytest.raises(SettingsError, match=re.escape(named)):
        from_argv(argv, environ)


def test_cli_rejects_bad_settings_before_serving(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "service", "--models", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error: --models / PAUC_SERVICE_MODELS" in result.stderr
    assert "is not a directory" in result.stderr


def test_device_auto_is_the_default_and_cpu_is_always_usable(tmp_path):
    import torch

    from pauc_ray.devices import resolve_device

    settings = from_argv(["--models", str(tmp_path)], {})
    assert settings.device == "auto"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(settings.device).type == expected
    assert from_argv(["--models", str(tmp_path), "--device", "CPU"], {}).device == "cpu"
    assert from_argv([], {"PAUC_SERVICE_MODELS": str(tmp_path), "PAUC_SERVICE_DEVICE": "cpu"})


def test_a_gpu_asked_for_without_one_stops_the_start(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: --device cuda is valid here")
    with pytest.raises(SettingsError, match="torch sees no CUDA GPU"):
        from_argv(["--models", str(tmp_path), "--device", "cuda"], {})
