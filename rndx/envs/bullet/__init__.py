"""PyBullet robot tasks. ``rndx/BulletAGVWarehouse-v0``: the AGV warehouse with contact physics.

Importing this package does not import PyBullet; the env does on construction, with a
``DependencyNotInstalled`` error and the install line when the engine is missing.
"""

from rndx.envs.bullet.agv import BulletAGVWarehouseEnv

__all__ = ["BulletAGVWarehouseEnv"]
