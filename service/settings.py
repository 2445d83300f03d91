"""The service's settings: a pydantic-settings model; environment variables and flags are views.

Every field has a default here, an environment variable (``PAUC_SERVICE_<NAME>``, except the
API key's ``PAUC_API_KEY``) and, except the API key, a command-line flag (``--<name>``).
Precedence: flag, then environment, then default. pydantic-settings reads the environment and
validates everything once, at start-up; a bad value raises :class:`SettingsError` naming the
variable or flag and what was expected. The API key has no flag, so it never shows in ``ps``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

__all__ = [
    "API_KEY_ENV",
    "ENV_PREFIX",
    "ServiceSettings",
    "SettingsError",
    "add_arguments",
    "env_name",
    "settings_from",
]

ENV_PREFIX = "PAUC_SERVICE_"
API_KEY_ENV = "PAUC_API_KEY"


class SettingsError(ValueError):
    """A setting (environment variable or flag) with a value the service cannot use."""


class ServiceSettings(BaseSettings):
    """Settings of ``python -m service`` (frozen once validated).

    Attributes:
        models: the storage folder (``ROOT``) whose run folders are served: a local folder,
            or a URI on an object store (``s3://bucket/runs``), whose runs' served files are
            then mirrored into a local cache first (:mod:`service.remote_models`;
            ``PAUC_MODELS_CACHE`` sets where).
        host, port: where uvicorn listens.
        api_key: when set, every route but ``/healthz`` and ``/readyz`` needs it.
        max_batch: inputs per model forward at most when micro-batching requests; ``1`` turns
            micro-batching off (every request is its own forward: batch-size-1 serving).
        max_wait_ms: how long the first request of a batch waits for others to join it.
        max_items: inputs per ``/embed`` request at most.
        max_body_bytes: request body size at most (413 beyond it).
        body_timeout_s: the longest a request's body may take to arrive (408 beyond it), so a
            slow client cannot hold a connection and its buffers.
        keep_alive_s: idle seconds before uvicorn closes a kept-alive connection.
        max_header_bytes: request line and headers at most (uvicorn answers 400 beyond it).
        nemd_max_inputs: inputs per ``/nemd`` request at most.
        nemd_max_rows: dataset rows a NEMD job embeds at most (a seeded subsample beyond it).
        nemd_workers: NEMD jobs running at once (threads, off the event loop).
        nemd_max_pending: queued plus running NEMD jobs at most (429 beyond it).
        nemd_keep_jobs: finished jobs kept for ``GET /nemd/{id}`` (oldest dropped first).
        nemd_time_limit_s: a job running longer stops at its next stage and says so.
        nemd_max_work: the most point pairs a job's Sinkhorn may compare, summed over its
            clusterings (prototype pairs x points per prototype squared); checked up front.
        nemd_max_clusters: K of a clustering at most.
        nemd_max_matrix: K at most for a job that returns its K x K matrix (``matrix: true``).
        nemd_jobs_dir: a folder through which the processes of one server (uvicorn workers,
            Serve replicas) share their NEMD jobs, so any of them answers ``GET`` and
            ``DELETE /nemd/{id}`` (:mod:`service.jobs`). Unset: ``--workers N`` makes a fresh
            one for its lifetime, Serve replicas use one per node; across nodes give a
            folder on a shared filesystem.
        discovery_depth: how deep under ``models`` run folders are looked for.
        device: where the encoders run: ``auto`` (a GPU when torch sees one, else the CPU),
            ``cpu``, ``cuda`` or ``cuda:N``; a GPU asked for and not visible stops the start.
        torch_threads: torch's intra-op threads; ``0`` keeps torch's default.
        switch_interval_ms: Python's GIL switch interval in the server process
            (``sys.setswitchinterval``). The event loop and the forward thread share the GIL;
            at Python's default (5 ms) a busy event loop keeps the forward thread waiting for
            the GIL between the model's layers (measured here: a ResNet-18 forward next to a
            busy Python thread ran 15x slower). Set by ``python -m service`` only.
        workers: uvicorn worker processes (each loads every model; the API key and the limits
            apply per process).
        ray_serve: serve with Ray Serve (replicas on a Ray cluster) instead of one uvicorn
            process (:mod:`service.ray_serve`).
        replicas: Serve replicas: ``N``, or ``MIN:MAX`` for Serve's autoscaling between them.
        cpus_per_replica, gpus_per_replica: what each replica reserves on the cluster.
        max_models_per_replica: models each replica keeps loaded (Serve's model multiplexing:
            the least recently used is dropped beyond it).
        target_ongoing_requests: requests in flight per replica that Serve's autoscaler aims at.
        access_log: one log line per request (``service.access``: request id, method, path,
            status, milliseconds).
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        frozen=True,
        extra="forbid",
        validate_by_name=True,  # api_key= in code, PAUC_API_KEY in the environment
    )

    models: Path | None = Field(None, description="storage folder whose run folders are served")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    api_key: str | None = Field(
        None,
        validation_alias=API_KEY_ENV,
        description="API key required by every route but the health checks",
    )
    max_batch: int = Field(
        64, ge=1, description="inputs per forward at most; 1 turns micro-batching off"
    )
    max_wait_ms: float = Field(
        2.0, ge=0, le=1000, allow_inf_nan=False, description="how long a batch waits, in ms"
    )
    max_items: int = Field(256, ge=1, description="inputs per /embed request at most")
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1, description="request body size at most, in bytes"
    )
    body_timeout_s: float = Field(
        30.0, gt=0, allow_inf_nan=False, description="seconds a request body may take to arrive"
    )
    keep_alive_s: float = Field(
        5.0, gt=0, allow_inf_nan=False, description="idle seconds a kept-alive connection stays"
    )
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="request line and headers at most, in bytes"
    )
    nemd_max_inputs: int = Field(10_000, ge=1, description="inputs per /nemd request at most")
    nemd_max_rows: int = Field(20_000, ge=1, description="dataset rows a NEMD job embeds at most")
    nemd_workers: int = Field(1, ge=1, description="NEMD jobs running at once")
    nemd_max_pending: int = Field(8, ge=1, description="queued plus running NEMD jobs at most")
    nemd_keep_jobs: int = Field(100, ge=1, description="finished NEMD jobs kept")
    nemd_time_limit_s: float = Field(
        600.0, gt=0, allow_inf_nan=False, description="seconds a NEMD job may run"
    )
    nemd_max_work: float = Field(
        2e9, gt=0, allow_inf_nan=False, description="point pairs a NEMD job may compare"
    )
    nemd_max_clusters: int = Field(5000, ge=2, description="K of a NEMD clustering at most")
    nemd_max_matrix: int = Field(
        500, ge=2, description="K at most for a NEMD job returning its K x K matrix"
    )
    nemd_jobs_dir: Path | None = Field(
        None,
        description="a folder the server's processes share NEMD jobs through (default: none "
        "for one process, a fresh one for --workers N, a node-local one for Serve replicas)",
    )
    discovery_depth: int = Field(
        4, ge=1, description="folder levels under --models searched for runs"
    )
    device: str = Field("auto", description="auto (a GPU when one is visible), cpu, cuda, cuda:N")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 keeps the default")
    switch_interval_ms: float = Field(
        0.5,
        ge=0.01,
        le=100,
        allow_inf_nan=False,
        description="Python's GIL switch interval in ms (sys.setswitchinterval)",
    )
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes")
    ray_serve: bool = Field(False, description="serve with Ray Serve instead of uvicorn")
    replicas: str = Field(
        "1", pattern=r"^\d+(:\d+)?$", description="Serve replicas: N, or MIN:MAX to autoscale"
    )
    cpus_per_replica: float = Field(1.0, ge=0, allow_inf_nan=False, description="CPUs each")
    gpus_per_replica: float = Field(0.0, ge=0, allow_inf_nan=False, description="GPUs each")
    max_models_per_replica: int = Field(
        8, ge=1, description="models a Serve replica keeps loaded (least recently used dropped)"
    )
    target_ongoing_requests: float = Field(
        32.0, gt=0, allow_inf_nan=False, description="Serve autoscaling: requests per replica"
    )
    access_log: bool = Field(True, description="one log line per request, with its request id")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="debug, info, warning or error"
    )

    @field_validator("models", mode="before")
    @classmethod
    def _models_is_a_folder(cls, value: Any) -> Path | None:
        if value is None:
            return None
        from pauc_ray.storage import StorageError, is_remote

        if isinstance(value, str) and is_remote(value):
            from service.remote_models import mirror_runs

            try:  # the Path type would fold "s3://" into "s3:/"
                return mirror_runs(value)
            except (OSError, StorageError) as exc:
                raise ValueError(f"{value!r}: cannot read the models there ({exc})") from None
        root = Path(value).expanduser()
        if not root.is_dir():
            raise ValueError(f"{str(root)!r} is not a directory")
        return root.resolve()

    @field_validator("device")
    @classmethod
    def _device_is_usable(cls, value: str) -> str:
        from pauc_ray.devices import resolve_device  # torch: only when a device is checked

        resolve_device(value)  # a ValueError says what is wrong
        return value.strip().lower()

    @model_validator(mode="after")
    def _replicas_make_sense(self) -> ServiceSettings:
        lo, hi = self.replica_range
        if hi < 1 or lo > hi:
            raise ValueError(
                f"--replicas / {env_name('replicas')}: expected N >= 1 or MIN:MAX with "
                f"MIN <= MAX and MAX >= 1, got {self.replicas!r}"
            )
        return self

    @model_validator(mode="after")
    def _required_and_non_empty(self) -> ServiceSettings:
        if self.models is None:
            raise ValueError(
                f"the models folder is required: --models ROOT or {env_name('models')}=ROOT"
            )
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError(f"{API_KEY_ENV} is set but empty; unset it or give a key")
        if self.api_key is not None and (
            self.api_key != self.api_key.strip()
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.api_key)
        ):
            raise ValueError(
                f"{API_KEY_ENV} has leading or trailing spaces or control characters, which no "
                "client can send in a header; any other UTF-8 text is fine"
            )
        return self

    @property
    def replica_range(self) -> tuple[int, int]:
        """``(min, max)`` Serve replicas (equal without autoscaling)."""
        lo, _, hi = self.replicas.partition(":")
        return int(lo), int(hi or lo)

    @property
    def micro_batching(self) -> bool:
        return self.max_batch > 1

    def public(self) -> dict[str, Any]:
        """The settings without the API key (for logs)."""
        out = self.model_dump(exclude={"api_key"})
        out["models"] = str(self.models)
        out["nemd_jobs_dir"] = None if self.nemd_jobs_dir is None else str(self.nemd_jobs_dir)
        out["api_key"] = "set" if self.api_key else None
        return out


def env_name(name: str) -> str:
    """The environment variable of field ``name``."""
    return API_KEY_ENV if name == "api_key" else ENV_PREFIX + name.upper()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _where(name: str) -> str:
    return env_name(name) if name == "api_key" else f"{_flag(name)} / {env_name(name)}"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """One flag per setting (not the API key); defaults are None so unset flags are visible."""
    for name, info in ServiceSettings.model_fields.items():
        if name == "api_key":
            continue
        default = "none" if info.default is None else info.default
        help_text = f"{info.description} (env {env_name(name)}; default: {default})"
        if info.annotation is bool:
            parser.add_argument(
                _flag(name), action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(_flag(name), default=None, metavar=name.upper(), help=help_text)
    return parser


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``
    (``python -m service`` passes ``os.environ``; tests pass their own)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = {key.lower(): value for key, value in environ.items()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ


_EXPECTED = {
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "bool_parsing": "a boolean (1/0, true/false, yes/no, on/off)",
}


def _settings_error(exc: ValidationError, from_flags: set[str]) -> SettingsError:
    """The first validation error as one line naming the flag or variable it came from."""
    error = exc.errors(include_url=False)[0]
    message = str(error.get("ctx", {}).get("error", error["msg"]))
    if not error["loc"]:  # a check across fields: the message names what to set
        return SettingsError(message)
    name = str(error["loc"][0])
    name = "api_key" if name == API_KEY_ENV else name
    if error["type"] in _EXPECTED:  # a value that is not of the type: name where it came from
        source = _flag(name) if name in from_flags else env_name(name)
        return SettingsError(
            f"{source}: expected {_EXPECTED[error['type']]}, got {error['input']!r}"
        )
    if error["type"] == "value_error":  # our own check: its message says what is wrong
        return SettingsError(f"{_where(name)}: {message}")
    message = message[0].lower() + message[1:]
    return SettingsError(f"{_where(name)}: {message}, got {error['input']!r}")


def settings_from(
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ServiceSettings:
    """Settings from flags (``args`` of :func:`add_arguments`), then ``environ``, then defaults.

    ``overrides`` (already typed values) win over both; tests and the benchmark use them.
    """
    flags = {
        name: value
        for name in ServiceSettings.model_fields
        if (value := getattr(args, name, None) if args is not None else None) is not None
    }
    given = {**flags, **overrides}
    environ = {} if environ is None else environ

    class _Settings(ServiceSettings):  # this call's environment, nothing else
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, **_others):
            return init_settings, _MappingEnvSource(settings_cls, environ)

    try:
        parsed = _Settings(**given)
    except ValidationError as exc:
        raise _settings_error(exc, set(flags)) from None
    return ServiceSettings.model_construct(**parsed.model_dump())
