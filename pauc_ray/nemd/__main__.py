"""``python -m pauc_ray.nemd``: the NEMD report of ``.npy`` files as JSON (see ``cli``)."""

from __future__ import annotations

from pauc_ray.nemd.cli import main

raise SystemExit(main())
