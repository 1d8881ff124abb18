"""Import the physics engines with an install hint when one is missing."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from gymnasium.error import DependencyNotInstalled

# module -> the pip line that installs it (both are core dependencies of rndx)
INSTALL = {
    "mujoco": 'pip install "mujoco>=3"',
    "pybullet": 'pip install "pybullet>=3.2"',
}


def require(module: str, env_id: str) -> ModuleType:
    """Import ``module`` (a physics engine) or raise ``DependencyNotInstalled`` naming the env
    that needs it and the install line. MuJoCo is pointed at EGL first (unless ``MUJOCO_GL``
    is set) so rendering works on machines without a display."""
    if module == "mujoco":
        os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyNotInstalled(
            f"{env_id} needs the {module!r} physics engine, which is not installed ({exc}). "
            f"Install it with: {INSTALL.get(module, f'pip install {module}')}"
        ) from exc
