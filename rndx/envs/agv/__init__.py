"""The 2D continuous AGV warehouse: world, batched core, and its single and vector faces."""

from rndx.envs.agv.core import AGVConfig, AGVCore
from rndx.envs.agv.env import AGVWarehouseEnv
from rndx.envs.agv.vector import AGVSB3VecEnv, AGVWarehouseVectorEnv
from rndx.envs.agv.world import known_layouts, load_layout

__all__ = [
    "AGVConfig",
    "AGVCore",
    "AGVWarehouseEnv",
    "AGVWarehouseVectorEnv",
    "AGVSB3VecEnv",
    "known_layouts",
    "load_layout",
]
