"""The small protocol a policy offers a monitor, and adapters for rndx's agents.

A monitorable policy has

    embed(obs (n, obs_dim)) -> (n, E)               the policy's own observation embedding
    sample_chunks(obs (n, obs_dim), B) -> (n, B, H, D)   B action chunks of horizon H

which is all that calibrating and scoring (``MonitoredPolicy.observe``, ``MonitorWrapper``)
use; the monitor always passes a batch (n, obs_dim) and checks the shapes returned. Optional:

    predict(obs, state=None, episode_start=None, deterministic=False) -> (actions, state)
        needed by ``MonitoredPolicy.predict`` only (it acts with the policy's own action)
    reset(idx=None)                                  forget per-episode memory (skipped if absent)

and ``observation_space`` / ``action_space`` (or ``obs_dim``): with them the monitor checks
observation shapes and that a loaded monitor was calibrated for this policy's sizes.
:func:`as_monitorable` wraps the chunk policy (its encoder output; its flow samples) and
Stable-Baselines3 policies with a Box action space (the actor's latent features; B single
actions from the stochastic policy, i.e. chunks of horizon 1). A user's own class with
``embed`` and ``sample_chunks`` is used as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rndx.utils.sde import resample_sde_noise


def _obs2d(obs: Any, obs_dim: int) -> np.ndarray:
    x = np.asarray(obs, dtype=np.float32)
    if x.shape[-1:] != (obs_dim,) or x.ndim > 2:
        raise ValueError(f"observation of shape {x.shape}; expected ({obs_dim},) or (n, {obs_dim})")
    return x.reshape(-1, obs_dim)


def observation_shape(policy: Any) -> tuple[int, ...] | None:
    """The shape of one observation of ``policy``'s env (its Box ``observation_space``), or
    None when it has none."""
    space = getattr(policy, "observation_space", None)
    shape = getattr(space, "shape", None)
    return tuple(int(d) for d in shape) if isinstance(space, spaces.Box) and shape else None


def observation_size(policy: Any) -> int | None:
    """Entries in one flattened observation: the policy's ``obs_dim``, else its Box
    ``observation_space``'s size; None when it says neither."""
    dim = getattr(policy, "obs_dim", None)
    shape = observation_shape(policy)
    if dim is None and shape is not None:
        dim = int(np.prod(shape))
    return None if dim is None else int(dim)


def flat_observations(policy: Any, obs: Any, obs_dim: int | None, batch: bool = False):
    """``obs`` as float32 rows (n, obs_dim) and whether it was one observation.

    An observation is (obs_dim,) or, for a policy whose Box observation space has an n-D
    shape S (an image), S itself; a batch is (n, obs_dim) or (n, *S) (a channel-last image
    for a channel-first SB3 space too). ``batch=True`` (a
    rollout) accepts batches only. A policy's optional ``prepare_obs(x)`` runs first (the SB3
    adapter transposes channel-last images as SB3 does). With nothing known of the policy's
    sizes (``obs_dim`` None), the last axis is the observation.

    :raises ValueError: "observation of shape ...; expected ..." ("has shape ...", after
        which the caller names the rollout, with ``batch``)."""
    x = np.asarray(obs, dtype=np.float32)
    prepare = getattr(policy, "prepare_obs", None)
    if callable(prepare):
        x = np.asarray(prepare(x), dtype=np.float32)
    shape = observation_shape(policy)
    if shape is not None and len(shape) > 1:
        if x.shape == shape and not batch:
            return x.reshape(1, -1), True
        if x.shape[1:] == shape:
            return x.reshape(len(x), -1), False
        dim = int(np.prod(shape))
        if 1 <= x.ndim <= 2 and x.shape[-1] == dim and (x.ndim == 2 or not batch):
            return x.reshape(-1, dim), x.ndim == 1  # already flattened rows
        s = ", ".join(map(str, shape))
        allowed = f"(T, {s}) or (T, {dim})" if batch else f"({s}), (n, {s}) or (n, {dim})"
    elif batch:
        if x.ndim == 2 and obs_dim in (None, x.shape[1]):
            return x, False
        allowed = f"(T, {'obs_dim' if obs_dim is None else obs_dim})"
    elif obs_dim is None:
        if 1 <= x.ndim <= 2:
            return x.reshape(-1, x.shape[-1]), x.ndim == 1
        allowed = "(obs_dim,) or (n, obs_dim)"
    elif 1 <= x.ndim <= 2 and x.shape[-1] == obs_dim:
        return x.reshape(-1, obs_dim), x.ndim == 1
    else:
        allowed = f"({obs_dim},) or (n, {obs_dim})"
    raise ValueError(f"{'has' if batch else 'observation of'} shape {x.shape}; expected {allowed}")


def observation_limits(policy: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) per flattened observation entry beyond which no observation of the policy's
    env lies: its Box ``observation_space``'s bounds widened by 1e-5 relative (rounding at the
    bounds; infinite bounds stay infinite); None when the policy has no Box space."""
    space = getattr(policy, "observation_space", None)
    if not isinstance(space, spaces.Box):
        return None
    low = space.low.reshape(-1).astype(np.float64)
    high = space.high.reshape(-1).astype(np.float64)
    with np.errstate(invalid="ignore"):
        return low - 1e-5 * (1.0 + np.abs(low)), high + 1e-5 * (1.0 + np.abs(high))


def invalid_rows(obs2d: np.ndarray, limits: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """(n,) True where an observation row cannot come from the policy's env: a NaN or inf, or
    a value beyond ``limits`` (:func:`observation_limits`; None: no bounds known)."""
    bad = ~np.isfinite(obs2d).all(axis=1)
    if limits is not None and limits[0].size == obs2d.shape[1]:
        bad |= ((obs2d < limits[0]) | (obs2d > limits[1])).any(axis=1)
    return bad


class ChunkPolicyAdapter:
    """The flow-matching chunk policy (:class:`rndx.agents.chunk_flow.ChunkFlowPolicy`)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.observation_space = policy.observation_space
        self.action_space = policy.action_space
        self.horizon = int(policy.horizon)
        self.obs_dim = int(policy.obs_dim)

    def embed(self, obs: Any) -> np.ndarray:
        return np.asarray(self.policy.embed(_obs2d(obs, self.obs_dim)))

    def sample_chunks(self, obs: Any, n_samples: int) -> np.ndarray:
        return np.asarray(self.policy.sample_chunks(_obs2d(obs, self.obs_dim), n_samples))

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return self.policy.predict(
            obs, state=state, episode_start=episode_start, deterministic=deterministic
        )

    def reset(self, idx: Any = None) -> None:
        self.policy.reset(idx)


class SB3PolicyAdapter:
    """A Stable-Baselines3 on-policy agent (PPO, :class:`IntrinsicPPO`) with a Box action
    space and a Gaussian policy: embedding = the actor's latent features (``latent_pi``);
    chunks of horizon 1 = B draws of the Gaussian, clipped to the action space as SB3 clips
    the actions it executes.

    :param seed: seeds the sampling generator.
    :raises ValueError: for any other action space (Discrete, MultiDiscrete, ...).
    """

    horizon = 1

    def __init__(self, model: Any, seed: int = 0) -> None:
        self.model = model
        self.sb3_policy = model.policy
        self.observation_space = model.observation_space
        self.action_space = model.action_space
        if not isinstance(self.observation_space, spaces.Box):
            raise ValueError(
                "the monitor's SB3 adapter needs a Box observation space (it scores arrays of "
                f"observations); got {self.observation_space}: train on "
                "gymnasium.wrappers.FlattenObservation(env), as rndx.train does for Dict spaces"
            )
        if not isinstance(self.action_space, spaces.Box):
            raise ValueError(
                "the monitor's SB3 adapter needs a Box action space (ACE puts continuous "
                f"actions on a grid); got {self.action_space}"
            )
        self.obs_dim = int(np.prod(self.observation_space.shape))
        self.generator = torch.Generator(device=self.sb3_policy.device).manual_seed(int(seed))
        self._low = torch.as_tensor(self.action_space.low, device=self.sb3_policy.device)
        self._high = torch.as_tensor(self.action_space.high, device=self.sb3_policy.device)

    def prepare_obs(self, obs: np.ndarray) -> np.ndarray:
        """Channel-last images transposed to the channel-first space SB3 trained on (its
        ``VecTransposeImage``), as SB3's own ``predict`` does; anything else as it is."""
        from stable_baselines3.common.preprocessing import is_image_space, maybe_transpose

        if is_image_space(self.observation_space) and np.ndim(obs) in (3, 4):
            return maybe_transpose(obs, self.observation_space)
        return obs

    def _latent(self, obs: Any) -> torch.Tensor:
        p = self.sb3_policy
        x = torch.as_tensor(_obs2d(obs, self.obs_dim), device=p.device)
        x = x.reshape(-1, *self.observation_space.shape)  # an image for a CNN extractor
        features = p.extract_features(x, p.pi_features_extractor)
        return p.mlp_extractor.forward_actor(features)

    @torch.inference_mode()
    def embed(self, obs: Any) -> np.ndarray:
        return self._latent(obs).cpu().numpy()

    @torch.inference_mode()
    def sample_chunks(self, obs: Any, n_samples: int) -> np.ndarray:
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        p = self.sb3_policy
        dist = p._get_action_dist_from_latent(self._latent(obs)).distribution
        mean, std = dist.mean, dist.stddev  # (n, D)
        eps = torch.randn(
            (mean.shape[0], n_samples, 1, mean.shape[1]),
            generator=self.generator,
            device=mean.device,
        )
        a = mean[:, None, None, :] + std[:, None, None, :] * eps
        return torch.maximum(torch.minimum(a, self._high), self._low).cpu().numpy()

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        """SB3's ``predict``; an observation row with a NaN or inf gets a NaN action (the
        policy is run on it with those entries zeroed: torch's Gaussian refuses a NaN mean),
        as a chunk policy replanning on it does: act on the monitor's alarm."""
        x = np.asarray(obs, dtype=np.float32)
        if not deterministic:  # gSDE: one noise draw per episode (rndx.utils.sde)
            resample_sde_noise(self.model, x.size // self.obs_dim, episode_start)
        broken = ~np.isfinite(x).reshape(-1, self.obs_dim).all(axis=1)
        if not broken.any():
            return self.model.predict(
                obs, state=state, episode_start=episode_start, deterministic=deterministic
            )
        action, state = self.model.predict(
            np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0),
            state=state,
            episode_start=episode_start,
            deterministic=deterministic,
        )
        action = np.array(action, dtype=np.float32)
        action.reshape(len(broken), -1)[broken] = np.nan
        return action, state

    def reset(self, idx: Any = None) -> None:
        """Feed-forward policy: no memory."""

    def intrinsic_score_fn(self):
        """RND-OE from the RND module that drove exploration during training (IntrinsicPPO):
        the L2 norm of its prediction error on its own (normalised) input."""
        module = getattr(self.model, "intrinsic", None)
        selector = getattr(self.model, "selector", None)
        if module is None or selector is None:
            raise ValueError(
                f"rnd='reuse' needs an IntrinsicPPO agent with an RND module; got "
                f"{type(self.model).__name__}"
            )
        if selector.uses_pose:
            raise ValueError(
                "rnd='reuse': this agent's RND saw info['pose'], which the monitor does not "
                "get from observations; train with intrinsic_input=obs (or indices) or use "
                "rnd='fit'"
            )

        def score(obs: np.ndarray) -> np.ndarray:
            x = _obs2d(obs, self.obs_dim)
            bad = ~np.isfinite(x).all(axis=1)
            s = np.sqrt(np.maximum(module.compute(selector(np.nan_to_num(x))), 0.0))
            s = s.astype(np.float64)
            s[bad] = np.inf
            return s

        return score


def as_monitorable(policy: Any) -> Any:
    """Wrap ``policy`` in its adapter; an object that already has ``embed`` and
    ``sample_chunks`` (an adapter, a user's policy) is returned as it is.

    :raises TypeError: for anything else, naming what is supported."""
    from rndx.agents.chunk_flow import ChunkFlowPolicy

    if isinstance(policy, ChunkFlowPolicy):
        return ChunkPolicyAdapter(policy)
    try:
        from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

        if isinstance(policy, OnPolicyAlgorithm):
            return SB3PolicyAdapter(policy)
    except ImportError:  # pragma: no cover - SB3 is a core dependency
        pass
    missing = [m for m in ("embed", "sample_chunks") if not callable(getattr(policy, m, None))]
    if not missing:
        return policy
    raise TypeError(
        f"cannot monitor a {type(policy).__name__}: it has no {' and no '.join(missing)} "
        "method; pass a ChunkFlowPolicy, a Stable-Baselines3 on-policy agent, or an object "
        "with embed(obs) -> (n, E) and sample_chunks(obs, B) -> (n, B, H, D) (predict and "
        "reset are optional)"
    )


def checked_embed(policy: Any, obs: np.ndarray, dim: int | None = None) -> np.ndarray:
    """``policy.embed(obs)`` for a batch ``obs`` (n, obs_dim), checked to be (n, E), with
    E = ``dim`` when given (the size the monitor's RND-OE was fitted on).

    :raises ValueError: naming the method, the shape received and the one expected."""
    e = np.asarray(policy.embed(obs))
    n = len(obs)
    if e.ndim != 2 or len(e) != n or (dim is not None and e.shape[1] != dim):
        raise ValueError(
            f"{type(policy).__name__}.embed(obs) returned shape {e.shape} for observations of "
            f"shape {np.shape(obs)}; expected (n, E) = ({n}, {'E' if dim is None else dim})"
        )
    return e


def checked_chunks(policy: Any, obs: np.ndarray, n_samples: int) -> np.ndarray:
    """``policy.sample_chunks(obs, B)`` for a batch ``obs`` (n, obs_dim), checked to be
    (n, B, H, D).

    :raises ValueError: naming the method, the shape received and the one expected."""
    c = np.asarray(policy.sample_chunks(obs, n_samples))
    n = len(obs)
    if c.ndim != 4 or c.shape[:2] != (n, n_samples):
        raise ValueError(
            f"{type(policy).__name__}.sample_chunks(obs, {n_samples}) returned shape {c.shape} "
            f"for observations of shape {np.shape(obs)}; expected (n, B, H, D) = "
            f"({n}, {n_samples}, H, D)"
        )
    return c
