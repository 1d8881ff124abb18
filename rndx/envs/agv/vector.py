"""Batched faces of the AGV core: a Gymnasium VectorEnv and a Stable-Baselines3 VecEnv.

The two libraries disagree on what happens when an episode ends, and each face gives its
library exactly its own semantics over the same core:

* Gymnasium 1.x (``AutoresetMode.NEXT_STEP``): the step that ends an episode returns the
  final observation; the *next* ``step`` call ignores that env's action, resets it and
  returns the reset observation with reward 0 and both flags False.
* SB3: the step that ends an episode already returns the reset observation; the final one
  is in ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` says whether
  to bootstrap (SB3's PPO bootstraps truncated episodes from that observation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from rndx.envs.agv.core import AGVConfig, AGVCore, validate_actions
from rndx.envs.agv.env import step_info


def _seed_list(seed: int | Sequence[int | None] | None, n: int) -> list[int | None] | None:
    """Gymnasium's vector convention: an int seeds env i with seed + i."""
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(n)]
    seeds = list(seed)
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} envs")
    return seeds


class _BatchedFace:
    """What both faces share: the core, spaces, time limit and episode bookkeeping."""

    def _setup(
        self,
        num_envs: int,
        max_episode_steps: int | None,
        render_mode: str | None,
        kwargs: dict[str, Any],
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; allowed: None, 'rgb_array'")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps={max_episode_steps!r} must be >= 1 or None")
        self.config = AGVConfig.from_kwargs(**kwargs)
        self.core = AGVCore(num_envs, self.config, track_env=0 if render_mode else -1)
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        low, high = self.core.observation_bounds()
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

    def _advance(
        self, actions: Any
    ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
        a = validate_actions(actions, self.core.n)
        reward, events = self.core.step(a)
        terminated = self.core.terminal(events)
        if self.max_episode_steps is None:
            truncated = np.zeros(self.core.n, dtype=bool)
        else:
            # Gymnasium's TimeLimit semantics: truncated even when the step also terminates
            truncated = self.core.steps >= self.max_episode_steps
        return reward, events, terminated, truncated

    def _render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from rndx.envs.agv.render import render_frame

        return render_frame(self.core, 0)


class AGVWarehouseVectorEnv(_BatchedFace, VectorEnv):
    """``gymnasium.make_vec("rndx/AGVWarehouse-v0", num_envs=N,
    vectorization_mode="vector_entry_point")``: N vehicles stepped by one batched core.

    Infos are dicts of arrays with Gymnasium's ``_key`` masks; the reset semantics are
    ``AutoresetMode.NEXT_STEP`` (module docstring)."""

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        self._setup(num_envs, max_episode_steps, render_mode, kwargs)
        self.num_envs = num_envs
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ):
        seeds = _seed_list(seed, self.num_envs)
        if seeds is not None:
            self.core.seed(seeds)
        self.core.reset_envs(np.arange(self.num_envs))
        if options is not None:  # checked even when falsy: options=[] is an error
            checked = self.core.check_options(options)  # the same options for every env
            for i in range(self.num_envs):
                self.core.place_checked(i, checked)
        self._autoreset[:] = False
        obs = self.core.observe()
        return obs, self._with_masks({"pose": self.core.poses()})

    def step(self, actions):
        reward, events, terminated, truncated = self._advance(actions)
        # envs that ended last step restart now; their action is ignored (NEXT_STEP)
        restart = self._autoreset.nonzero()[0]
        if len(restart):
            self.core.reset_envs(restart)
            reward[restart] = 0.0
            terminated[restart] = truncated[restart] = False
            for k in ("success", "collision", "picked"):
                events[k][restart] = False
        obs = self.core.observe()
        self._autoreset = terminated | truncated
        info = step_info(self.core, events, slice(None))
        return obs, reward.astype(np.float64), terminated, truncated, self._with_masks(info)

    @staticmethod
    def _with_masks(info: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # every env has every key; each mask is its own row of one fresh block (one
        # allocation, not one per key; np.ones costs more than empty + fill here)
        masks = np.empty((len(info), len(info["pose"])), dtype=bool)
        masks.fill(True)
        for k, mask in zip(list(info), masks):
            info["_" + k] = mask
        return info

    def render(self) -> np.ndarray | None:
        return self._render()


class AGVSB3VecEnv(_BatchedFace, VecEnv):
    """A Stable-Baselines3 VecEnv over the batched core, with SB3's same-step reset semantics.

    Episode statistics (``info["episode"]``) come from wrapping it in ``VecMonitor``."""

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        self._setup(num_envs, max_episode_steps, render_mode, kwargs)
        VecEnv.__init__(self, num_envs, self.single_observation_space, self.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        if any(s is not None for s in self._seeds):
            self.core.seed(self._seeds)
        self.core.reset_envs(np.arange(self.num_envs))
        for i, opts in enumerate(self._options):
            if opts:
                self.core.place(i, opts)
        self._reset_seeds()
        self._reset_options()
        poses = self.core.poses()
        self.reset_infos = [{"pose": poses[i]} for i in range(self.num_envs)]
        return self.core.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        reward, events, terminated, truncated = self._advance(self._actions)
        obs = self.core.observe()
        done = terminated | truncated
        per_env = step_info(self.core, events, slice(None))
        # iterating an array yields what indexing it does (numpy scalars, pose rows), in one
        # pass per key instead of one index per key and env
        keys = list(per_env)
        infos = [dict(zip(keys, values)) for values in zip(*per_env.values())]
        ended = done.nonzero()[0]
        for i in ended:
            infos[i]["is_success"] = bool(events["success"][i])
            infos[i]["terminal_observation"] = obs[i].copy()
            # SB3 bootstraps only episodes cut by the time limit, not terminated ones
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        if len(ended):
            self.core.reset_envs(ended)
            obs[ended] = self.core.observe(ended)
        return obs, reward.astype(np.float32), done, infos

    def close(self) -> None:
        pass

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [self._render()]

    def render(self, mode: str | None = None) -> np.ndarray | None:
        return self._render()

    # SB3 VecEnv plumbing: there are no sub-env objects, the core holds every vehicle
    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        return [
            getattr(self, method_name)(*method_args, **method_kwargs)
            for _ in self._get_indices(indices)
        ]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
