"""MuJoCo robot tasks. ``rndx/MujocoPush-v0``: push a block to a goal region (sparse reward).

Importing this package does not import MuJoCo; the env does on construction, with a
``DependencyNotInstalled`` error and the install line when the engine is missing.
"""

from rndx.envs.mujoco.expert import push_expert
from rndx.envs.mujoco.push import SHIFTS, MujocoPushEnv, PushConfig

__all__ = ["SHIFTS", "MujocoPushEnv", "PushConfig", "push_expert"]
