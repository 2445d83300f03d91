"""``python -m service --models ROOT [--host 127.0.0.1] [--port 8000]``: serve with uvicorn
(one process), or with ``--ray-serve`` as Ray Serve replicas (:mod:`service.ray_serve`).

Every setting is a flag and an environment variable (``python -m service --help``); a bad one
stops the start with ``error: ...`` naming it (exit code 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.metrics import MULTIPROCESS_ENV
from service.settings import SettingsError, add_arguments, settings_from

SETTINGS_ENV = "PAUC_SERVICE_SETTINGS_JSON"  # the parent's checked settings, for --workers N


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Serve embeddings and NEMD reports of the models exported under ROOT.",
    )
    return add_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args, os.environ)
    except SettingsError as exc:
        parser.error(str(exc))
    configure_logging(settings)
    if settings.ray_serve:  # replicas on a Ray cluster (service/ray_serve.py)
        from service.ray_serve import serve_forever

        serve_forever(settings)
        return 0
    # this process serves and nothing else, so it may set process-wide things
    sys.setswitchinterval(settings.switch_interval_ms / 1000.0)
    # imported after the settings are checked: a bad flag should not wait for torch
    import uvicorn

    from service.app import create_app

    with contextlib.ExitStack() as stack:
        if settings.workers > 1:
            # one /metrics over all the processes (service/metrics.py), through files in a
            # directory of this server's own; set before the workers are spawned
            metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="pauc-metrics-"))
            os.environ[MULTIPROCESS_ENV] = metrics_dir
            if settings.nemd_jobs_dir is None:  # any process answers for any job (jobs.py)
                jobs_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="pauc-jobs-"))
                settings = settings.model_copy(update={"nemd_jobs_dir": Path(jobs_dir)})
            # uvicorn starts each worker from an import string: the checked settings travel in
            # the environment, and every worker builds the same app from them
            os.environ[SETTINGS_ENV] = json.dumps(settings.model_dump(mode="json"))
            app: Any = "service.__main__:app_from_environment"
        else:
            app = create_app(settings)
        uvicorn.run(
            app,
            factory=settings.workers > 1,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,  # the service writes its own, with the request id (middleware.py)
            timeout_keep_alive=settings.keep_alive_s,
            h11_max_incomplete_event_size=settings.max_header_bytes,
            log_config=None,  # keep the logging configured above
        )
    return 0


def configure_logging(settings) -> None:
    """stderr logging at ``--log-level``, every record naming its request id."""
    from service.middleware import RequestIdFilter

    logging.basicConfig(
        stream=sys.stderr,
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s",
    )
    for handler in logging.getLogger().handlers:  # every record says which request it is of
        handler.addFilter(RequestIdFilter())


def app_from_environment():
    """The app of one uvicorn worker process (``--workers N``), from the settings the parent
    checked and put in ``PAUC_SERVICE_SETTINGS_JSON``."""
    from service.app import create_app
    from service.settings import ServiceSettings

    settings = ServiceSettings.model_validate(json.loads(os.environ[SETTINGS_ENV]))
    configure_logging(settings)
    sys.setswitchinterval(settings.switch_interval_ms / 1000.0)
    return create_app(settings)


if __name__ == "__main__":
    sys.exit(main())
