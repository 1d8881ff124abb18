"""A shape check in front of SB3's DummyVecEnv (the VecEnv of the robot tasks and of any
Gymnasium id), as the AGV VecEnv has its own."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnvWrapper


class CheckedActions(VecEnvWrapper):
    """SB3's DummyVecEnv hands ``actions[i]`` to env i, so a batch of the wrong shape failed
    inside it (an IndexError, or each env rejecting a scalar): the batch's shape is checked
    first. SB3's attributes (``envs``, ``get_attr``, ...) reach the wrapped VecEnv."""

    def step_async(self, actions) -> None:
        shape, n = self.action_space.shape, self.num_envs
        got = np.shape(actions)
        if got != (n, *shape) and not (n == 1 and got == shape):
            raise ValueError(f"actions of shape {got} for {n} envs; expected {(n, *shape)}")
        self.venv.step_async(actions)

    def step_wait(self):
        return self.venv.step_wait()

    def reset(self):
        return self.venv.reset()
