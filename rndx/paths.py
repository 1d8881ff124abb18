"""Where rndx finds its shipped data (Hydra configs, warehouse layouts)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """Return the Hydra config folder.

    A wheel carries the configs inside the package (``rndx/configs``, see pyproject's
    force-include); a source or editable checkout keeps them at the repository root.
    """
    packaged = _PACKAGE_DIR / "configs"
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent / "configs"


def layouts_dir() -> Path:
    """Return the folder of warehouse layout files (``<config_dir>/layouts``)."""
    return config_dir() / "layouts"
