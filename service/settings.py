"""The service's settings: one frozen dataclass; environment variables and flags are views of it.

Every field has a default here, an environment variable (``PAUC_SERVICE_<NAME>``, except the
API key's ``PAUC_API_KEY``) and, except the API key, a command-line flag (``--<name>``).
Precedence: flag, then environment, then default. Everything is checked once, at start-up
(:meth:`ServiceSettings.__post_init__`); a bad value raises :class:`SettingsError` naming the
variable or flag and what was expected. The API key has no flag, so it never shows in ``ps``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_PREFIX",
    "ServiceSettings",
    "SettingsError",
    "add_arguments",
    "env_name",
    "settings_from",
]

ENV_PREFIX = "PAUC_SERVICE_"
API_KEY_ENV = "PAUC_API_KEY"
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True}
_BOOL_WORDS |= {"0": False, "false": False, "no": False, "off": False}


class SettingsError(ValueError):
    """A setting (environment variable or flag) with a value the service cannot use."""


def _doc(help: str, env: str | None = None) -> dict[str, Any]:
    return {"help": help, "env": env}


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of ``python -m service``.

    Attributes:
        models: the storage folder (``ROOT``) whose run folders are served.
        host, port: where uvicorn listens.
        api_key: when set, every route but ``/healthz`` and ``/readyz`` needs it.
        max_batch: inputs per model forward at most when micro-batching requests; ``1`` turns
            micro-batching off (every request is its own forward: batch-size-1 serving).
        max_wait_ms: how long the first request of a batch waits for others to join it.
        max_items: inputs per ``/embed`` request at most.
        max_body_bytes: request body size at most (413 beyond it).
        nemd_max_inputs: inputs per ``/nemd`` request at most.
        nemd_max_rows: dataset rows a NEMD job embeds at most (a seeded subsample beyond it).
        nemd_workers: NEMD jobs running at once (threads, off the event loop).
        nemd_max_pending: queued plus running NEMD jobs at most (429 beyond it).
        nemd_keep_jobs: finished jobs kept for ``GET /nemd/{id}`` (oldest dropped first).
        discovery_depth: how deep under ``models`` run folders are looked for.
        torch_threads: torch's intra-op threads; ``0`` keeps torch's default.
        switch_interval_ms: Python's GIL switch interval in the server process
            (``sys.setswitchinterval``). The event loop and the forward thread share the GIL;
            at Python's default (5 ms) a busy event loop keeps the forward thread waiting for
            the GIL between the model's layers (measured here: a ResNet-18 forward next to a
            busy Python thread ran 15x slower). Set by ``python -m service`` only.
        access_log: uvicorn's per-request log lines.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
    """

    models: Path = field(
        default=None, metadata=_doc("storage folder whose run folders are served (required)")
    )
    host: str = field(default="127.0.0.1", metadata=_doc("address to listen on"))
    port: int = field(default=8000, metadata=_doc("port to listen on"))
    api_key: str | None = field(
        default=None,
        metadata=_doc("API key required by every route but the health checks", env=API_KEY_ENV),
    )
    max_batch: int = field(
        default=64, metadata=_doc("inputs per forward at most; 1 turns micro-batching off")
    )
    max_wait_ms: float = field(
        default=2.0, metadata=_doc("how long a batch waits to fill, in milliseconds")
    )
    max_items: int = field(default=256, metadata=_doc("inputs per /embed request at most"))
    max_body_bytes: int = field(
        default=16 * 1024 * 1024, metadata=_doc("request body size at most, in bytes")
    )
    nemd_max_inputs: int = field(default=10_000, metadata=_doc("inputs per /nemd request at most"))
    nemd_max_rows: int = field(
        default=20_000, metadata=_doc("dataset rows a NEMD job embeds at most")
    )
    nemd_workers: int = field(default=1, metadata=_doc("NEMD jobs running at once"))
    nemd_max_pending: int = field(default=8, metadata=_doc("queued plus running NEMD jobs at most"))
    nemd_keep_jobs: int = field(default=100, metadata=_doc("finished NEMD jobs kept"))
    discovery_depth: int = field(
        default=4, metadata=_doc("folder levels under --models searched for runs")
    )
    torch_threads: int = field(
        default=0, metadata=_doc("torch intra-op threads; 0 keeps torch's default")
    )
    switch_interval_ms: float = field(
        default=0.5, metadata=_doc("Python's GIL switch interval in ms (sys.setswitchinterval)")
    )
    access_log: bool = field(default=True, metadata=_doc("uvicorn access log"))
    log_level: str = field(default="info", metadata=_doc("debug, info, warning or error"))

    def __post_init__(self) -> None:
        if self.models is None:
            raise SettingsError(
                f"the models folder is required: --models ROOT or {env_name('models')}=ROOT"
            )
        root = Path(self.models).expanduser()
        if not root.is_dir():
            raise SettingsError(f"{_where('models')}: {str(root)!r} is not a directory")
        object.__setattr__(self, "models", root.resolve())
        if self.api_key is not None and not self.api_key.strip():
            raise SettingsError(f"{API_KEY_ENV} is set but empty; unset it or give a key")
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"{_where('port')}: must be in 0..65535, got {self.port}")
        for name in (
            "max_batch",
            "max_items",
            "max_body_bytes",
            "nemd_max_inputs",
            "nemd_max_rows",
            "nemd_workers",
            "nemd_max_pending",
            "nemd_keep_jobs",
            "discovery_depth",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{_where(name)}: must be >= 1, got {getattr(self, name)}")
        if self.torch_threads < 0:
            raise SettingsError(f"{_where('torch_threads')}: must be >= 0")
        if not (math.isfinite(self.max_wait_ms) and 0 <= self.max_wait_ms <= 1000):
            raise SettingsError(
                f"{_where('max_wait_ms')}: must be in [0, 1000] ms, got {self.max_wait_ms}"
            )
        if not (math.isfinite(self.switch_interval_ms) and 0.01 <= self.switch_interval_ms <= 100):
            raise SettingsError(
                f"{_where('switch_interval_ms')}: must be in [0.01, 100] ms, "
                f"got {self.switch_interval_ms}"
            )
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError(
                f"{_where('log_level')}: must be debug, info, warning or error, "
                f"got {self.log_level!r}"
            )

    @property
    def micro_batching(self) -> bool:
        return self.max_batch > 1

    def public(self) -> dict[str, Any]:
        """The settings without the API key (for logs)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key"}
        out["models"] = str(self.models)
        out["api_key"] = "set" if self.api_key else None
        return out


def env_name(name: str) -> str:
    """The environment variable of field ``name``."""
    env = ServiceSettings.__dataclass_fields__[name].metadata["env"]
    return env or ENV_PREFIX + name.upper()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _where(name: str) -> str:
    return f"{_flag(name)} / {env_name(name)}"


def _field_type(name: str) -> type:
    default = ServiceSettings.__dataclass_fields__[name].default
    if name == "models":
        return Path
    if name == "api_key":
        return str
    return type(default)


def _parse(name: str, text: str, source: str) -> Any:
    kind = _field_type(name)
    try:
        if kind is bool:
            return _BOOL_WORDS[text.strip().lower()]
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except (KeyError, ValueError):
        expected = {bool: "a boolean (1/0, true/false, yes/no, on/off)", int: "an integer"}
        raise SettingsError(
            f"{source}: expected {expected.get(kind, 'a number')}, got {text!r}"
        ) from None
    return kind(text)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """One flag per setting (not the API key); defaults are None so unset flags are visible."""
    for f in fields(ServiceSettings):
        if f.name == "api_key":
            continue
        default = "none" if f.default in (None, MISSING) else f.default
        help_text = f"{f.metadata['help']} (env {env_name(f.name)}; default: {default})"
        if _field_type(f.name) is bool:
            parser.add_argument(
                _flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(_flag(f.name), default=None, metavar=f.name.upper(), help=help_text)
    return parser


def settings_from(
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ServiceSettings:
    """Settings from flags (``args`` of :func:`add_arguments`), then ``environ``, then defaults.

    ``overrides`` (already typed values) win over both; tests and the benchmark use them.
    """
    environ = {} if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(ServiceSettings):
        env = env_name(f.name)
        if env in environ:
            values[f.name] = _parse(f.name, environ[env], env)
        flag_value = getattr(args, f.name, None) if args is not None else None
        if flag_value is not None:
            if isinstance(flag_value, str):
                flag_value = _parse(f.name, flag_value, _flag(f.name))
            values[f.name] = flag_value
    values.update(overrides)
    return ServiceSettings(**values)
