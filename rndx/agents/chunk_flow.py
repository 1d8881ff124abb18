"""A conditional flow-matching (rectified flow) policy over chunks of future actions.

The policy imitation-learning monitors are designed for: given an observation it samples a
chunk of the next ``horizon`` actions, executes the first ``execute`` of them and replans
(receding horizon).

Model
    encoder     observation (normalised) -> MLP -> embedding e of ``embedding_dim`` (64)
                values; ``embed(obs)`` returns it (the monitor's input).
    velocity    v(x_t, t, e): MLP over the flattened chunk x_t (horizon * action_dim), sinusoidal
                features of t and e. Its first layer is a sum W_x x + W_t phi(t) + W_e e, so
                W_e e is computed once per observation, not once per integration step.

Training (rectified flow, Liu et al. 2022): a1 = the expert's chunk (normalised), a0 ~ N(0, I),
t ~ U(0, 1), x_t = (1 - t) a0 + t a1, loss = || v(x_t, t, e) - (a1 - a0) ||^2. Chunks that run
past the end of an episode are padded by repeating the episode's last action (the episode is
over there, so any continuation is as good; repeating keeps the chunk smooth).

Sampling: Euler integration of dx/dt = v from t = 0 to 1 in ``flow_steps`` equal steps, for
all B chunks of all observations in one batched call. The start noise comes from a
``torch.Generator`` (``seed=`` makes a call reproducible); deterministic sampling
(``predict(..., deterministic=True)``) starts from zero noise, the prior's mean, so it needs
no seed and gives the same chunk every time. Samples are de-normalised and clipped to the
action space.

Observations and actions are standardised with mean / std of the demonstrations; both are
saved in the checkpoint (one ``torch.save`` file, written atomically).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rndx.utils.io import atomic_save, load_torch_state

_STD_FLOOR = 1e-2  # constant features (e.g. a lidar beam that never sees a wall) stay finite
_FORMAT = "rndx.chunk_flow/1"


def _mlp(sizes: Sequence[int], out_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or out_act:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class ChunkFlowNet(nn.Module):
    """Observation encoder + velocity network (all inputs and outputs normalised)."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        horizon: int,
        embedding_dim: int,
        encoder_hidden: Sequence[int],
        velocity_hidden: Sequence[int],
        time_features: int = 32,
    ) -> None:
        super().__init__()
        self.chunk_dim = horizon * action_dim
        self.time_features = time_features
        self.encoder = _mlp([obs_dim, *encoder_hidden, embedding_dim])
        width = velocity_hidden[0]
        self.in_x = nn.Linear(self.chunk_dim, width)
        self.in_t = nn.Linear(time_features, width, bias=False)
        self.in_e = nn.Linear(embedding_dim, width, bias=False)
        self.trunk = nn.Sequential(nn.SiLU(), _mlp([*velocity_hidden, self.chunk_dim]))
        freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), time_features // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """Sinusoidal features (n, time_features) of t (n,) in [0, 1]."""
        arg = t[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)

    def velocity(self, x: torch.Tensor, t: torch.Tensor, e_term: torch.Tensor) -> torch.Tensor:
        """v(x, t) with the embedding's first-layer term ``e_term = in_e(e)`` precomputed."""
        return self.trunk(self.in_x(x) + self.in_t(self.time_embedding(t)) + e_term)


class ChunkFlowPolicy:
    """Rectified-flow action-chunk policy with a receding-horizon ``predict``.

    :param observation_space, action_space: flat Box spaces of the env.
    :param horizon: H, actions per chunk.
    :param execute: k, actions of a chunk executed before replanning (1 <= k <= H).
    :param embedding_dim: size of the encoder output, the policy's embedding.
    :param encoder_hidden, velocity_hidden: hidden layer widths of the two MLPs.
    :param flow_steps: Euler steps when sampling.
    :param obs_mean, obs_std, action_mean, action_std: normalisation (from the demos).
    :param seed: seeds the network initialisation and the sampling generator.
    :param device: torch device string.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Box,
        horizon: int = 16,
        execute: int = 8,
        embedding_dim: int = 64,
        encoder_hidden: Sequence[int] = (256, 256),
        velocity_hidden: Sequence[int] = (128, 128),
        flow_steps: int = 10,
        obs_mean: np.ndarray | None = None,
        obs_std: np.ndarray | None = None,
        action_mean: np.ndarray | None = None,
        action_std: np.ndarray | None = None,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(
                f"chunk_flow needs a flat Box observation space, got {observation_space}"
            )
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"chunk_flow needs a flat Box action space, got {action_space}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if not 1 <= execute <= horizon:
            raise ValueError(f"execute must be in [1, horizon={horizon}], got {execute}")
        if flow_steps < 1:
            raise ValueError(f"flow_steps must be >= 1, got {flow_steps}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.obs_dim = int(observation_space.shape[0])
        self.action_dim = int(action_space.shape[0])
        self.horizon, self.execute = int(horizon), int(execute)
        self.embedding_dim, self.flow_steps = int(embedding_dim), int(flow_steps)
        self.encoder_hidden = [int(h) for h in encoder_hidden]
        self.velocity_hidden = [int(h) for h in velocity_hidden]
        self.seed = int(seed)
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(self.seed)
            self.net = ChunkFlowNet(
                self.obs_dim,
                self.action_dim,
                self.horizon,
                self.embedding_dim,
                self.encoder_hidden,
                self.velocity_hidden,
            ).to(self.device)

        def stat(x: np.ndarray | None, fill: float, n: int) -> torch.Tensor:
            v = np.full(n, fill) if x is None else np.asarray(x, dtype=np.float64).reshape(n)
            return torch.as_tensor(v, dtype=torch.float32, device=self.device)

        self.obs_mean = stat(obs_mean, 0.0, self.obs_dim)
        self.obs_std = stat(obs_std, 1.0, self.obs_dim).clamp_min(_STD_FLOOR)
        self.action_mean = stat(action_mean, 0.0, self.action_dim)
        self.action_std = stat(action_std, 1.0, self.action_dim).clamp_min(_STD_FLOOR)
        self._low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device)
        self._high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.num_timesteps = 0  # gradient steps taken (SB3 agents count env steps here)
        self._queue: np.ndarray | None = None  # (n_envs, H, action_dim) current chunks
        self._pos = np.zeros(0, dtype=np.int64)  # next chunk index to execute, per env

    # ------------------------------------------------------------------ normalisation
    def _obs_tensor(self, obs: Any) -> torch.Tensor:
        """(n, obs_dim) normalised tensor from one observation or a batch."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        if x.shape[-1:] != (self.obs_dim,) or x.dim() > 2:
            raise ValueError(
                f"observation of shape {tuple(x.shape)}; expected "
                f"({self.obs_dim},) or (n, {self.obs_dim})"
            )
        return (x.reshape(-1, self.obs_dim) - self.obs_mean) / self.obs_std

    def normalise_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return (actions - self.action_mean) / self.action_std

    # ------------------------------------------------------------------ the protocol
    @torch.inference_mode()
    def embed(self, obs: Any) -> np.ndarray:
        """The encoder's embedding: (embedding_dim,) for one observation, (n, embedding_dim)
        for a batch."""
        e = self.net.encoder(self._obs_tensor(obs)).cpu().numpy()
        return e[0] if np.ndim(obs) == 1 else e

    @torch.inference_mode()
    def sample_chunks(
        self,
        obs: Any,
        n_samples: int,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> np.ndarray:
        """Sample ``n_samples`` (B) action chunks per observation in one batched call.

        :param obs: one observation (obs_dim,) or a batch (n, obs_dim).
        :param seed: seeds a fresh generator for this call (reproducible samples).
        :param generator: draw the start noise from it (ignored when ``seed`` is given);
            default: the policy's own generator.
        :param deterministic: start every chunk from zero noise.
        :return: (B, H, action_dim) for one observation, (n, B, H, action_dim) for a batch,
            in the env's action units, clipped to the action space.
        """
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(int(seed))
        chunks = (
            self._sample(
                self._obs_tensor(obs), int(n_samples), generator or self.generator, deterministic
            )
            .cpu()
            .numpy()
        )
        return chunks[0] if np.ndim(obs) == 1 else chunks

    def _sample(
        self, obs_n: torch.Tensor, n_samples: int, generator: torch.Generator, deterministic: bool
    ) -> torch.Tensor:
        """Euler-integrate the flow for (n, B) chunks; returns (n, B, H, action_dim)."""
        n = obs_n.shape[0]
        e_term = self.net.in_e(self.net.encoder(obs_n)).repeat_interleave(n_samples, dim=0)
        shape = (n * n_samples, self.net.chunk_dim)
        if deterministic:
            x = torch.zeros(shape, device=self.device)
        else:
            x = torch.randn(shape, generator=generator, device=self.device)
        dt = 1.0 / self.flow_steps
        # the time term of the first layer for every Euler step, in one matmul
        t = torch.arange(self.flow_steps, device=self.device, dtype=torch.float32) * dt
        t_terms = self.net.in_t(self.net.time_embedding(t))
        for i in range(self.flow_steps):
            x = x + dt * self.net.trunk(self.net.in_x(x) + t_terms[i] + e_term)
        a = x.reshape(n, n_samples, self.horizon, self.action_dim)
        a = a * self.action_std + self.action_mean
        return torch.maximum(torch.minimum(a, self._high), self._low)

    # ------------------------------------------------------------------ acting
    def reset(self, idx: Any = None) -> None:
        """Drop the queued chunks of envs ``idx`` (all when None): they replan next step."""
        if idx is None:
            self._queue = None
        elif self._queue is not None:
            self._pos[idx] = self.execute

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Receding horizon, with SB3's signature: return ``(actions, state)``.

        Each env keeps a queue of its current chunk and replans after ``execute`` actions,
        or at once where ``episode_start`` is True. A new batch size resets every queue.
        ``state`` is passed through unchanged (the queues live on the policy).
        """
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        obs2 = obs.reshape(-1, self.obs_dim)
        n = obs2.shape[0]
        if self._queue is None or self._queue.shape[0] != n:
            self._queue = np.zeros((n, self.horizon, self.action_dim), dtype=np.float32)
            self._pos = np.full(n, self.execute, dtype=np.int64)
        if episode_start is not None:
            self._pos[np.asarray(episode_start, dtype=bool).reshape(n)] = self.execute
        replan = np.flatnonzero(self._pos >= self.execute)
        if len(replan):
            with torch.inference_mode():
                chunks = self._sample(
                    self._obs_tensor(obs2[replan]), 1, self.generator, deterministic
                )
            self._queue[replan] = chunks[:, 0].cpu().numpy()
            self._pos[replan] = 0
        actions = self._queue[np.arange(n), self._pos].copy()
        self._pos += 1
        return (actions[0] if single else actions), state

    # ------------------------------------------------------------------ training
    def bc_loss(
        self, obs: torch.Tensor, chunks: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Rectified-flow loss for raw ``obs`` (b, obs_dim) and expert ``chunks``
        (b, H, action_dim): mean over the batch of ||v(x_t, t, e) - (a1 - a0)||^2 / (H * A)."""
        b = obs.shape[0]
        a1 = self.normalise_actions(chunks).reshape(b, -1)
        a0 = torch.randn(a1.shape, generator=generator, device=self.device)
        t = torch.rand(b, generator=generator, device=self.device)
        x_t = (1.0 - t[:, None]) * a0 + t[:, None] * a1
        e = self.net.encoder((obs - self.obs_mean) / self.obs_std)
        v = self.net.velocity(x_t, t, self.net.in_e(e))
        return ((v - (a1 - a0)) ** 2).mean()

    # ------------------------------------------------------------------ persistence
    def _hparams(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "execute": self.execute,
            "embedding_dim": self.embedding_dim,
            "encoder_hidden": self.encoder_hidden,
            "velocity_hidden": self.velocity_hidden,
            "flow_steps": self.flow_steps,
            "seed": self.seed,
        }

    def save(self, path: str | Path) -> Path:
        """Write weights, normalisation, spaces and settings to one file, atomically."""
        state = {
            "format": _FORMAT,
            "hparams": self._hparams(),
            "spaces": {
                "obs_low": torch.as_tensor(self.observation_space.low),
                "obs_high": torch.as_tensor(self.observation_space.high),
                "action_low": torch.as_tensor(self.action_space.low),
                "action_high": torch.as_tensor(self.action_space.high),
            },
            "stats": {
                "obs_mean": self.obs_mean.cpu(),
                "obs_std": self.obs_std.cpu(),
                "action_mean": self.action_mean.cpu(),
                "action_std": self.action_std.cpu(),
            },
            "net": {k: v.cpu() for k, v in self.net.state_dict().items()},
            "num_timesteps": int(self.num_timesteps),
        }
        return atomic_save(lambda p: torch.save(state, p), path)

    @classmethod
    def load(cls, path: str | Path, env: Any = None, device: str = "cpu") -> ChunkFlowPolicy:
        """Load a policy written by :meth:`save` (``env`` is accepted for the registry's
        signature and ignored: the policy needs no env).

        :raises FileNotFoundError: if ``path`` is missing.
        :raises ValueError: if the file is corrupt or not a chunk_flow checkpoint.
        """
        state = load_torch_state(path, _FORMAT, "chunk_flow checkpoint")
        sp, st = state["spaces"], state["stats"]
        policy = cls(
            spaces.Box(sp["obs_low"].numpy(), sp["obs_high"].numpy(), dtype=np.float32),
            spaces.Box(sp["action_low"].numpy(), sp["action_high"].numpy(), dtype=np.float32),
            **state["hparams"],
            device=device,
            **{k: v.numpy() for k, v in st.items()},
        )
        try:
            policy.net.load_state_dict(state["net"])
        except RuntimeError as exc:
            raise ValueError(
                f"chunk_flow checkpoint {str(path)!r} does not match its settings: {exc}"
            ) from exc
        policy.num_timesteps = int(state.get("num_timesteps", 0))
        return policy


# ---------------------------------------------------------------------- behaviour cloning
def chunk_targets(actions: np.ndarray, episode: np.ndarray, horizon: int) -> np.ndarray:
    """(N, H, action_dim): the H actions from every step on, within its own episode.

    Steps past the episode's end repeat its last action."""
    n = len(actions)
    if n == 0:
        return np.zeros((0, horizon) + actions.shape[1:], dtype=np.float32)
    change = np.flatnonzero(np.diff(episode) != 0)
    ends = np.r_[change, n - 1]  # last index of each run of equal episode ids
    run = np.r_[0, np.cumsum(np.diff(episode) != 0)]  # which run each step is in
    idx = np.minimum(np.arange(n)[:, None] + np.arange(horizon)[None, :], ends[run][:, None])
    return actions[idx].astype(np.float32)


def from_demos(
    demos: Any,
    observation_space: spaces.Box,
    action_space: spaces.Box,
    seed: int = 0,
    device: str = "cpu",
    **policy_kwargs: Any,
) -> ChunkFlowPolicy:
    """A fresh policy whose normalisation statistics come from ``demos`` (a ``Demos``)."""
    return ChunkFlowPolicy(
        observation_space,
        action_space,
        obs_mean=demos.obs.mean(0),
        obs_std=demos.obs.std(0),
        action_mean=demos.actions.mean(0),
        action_std=demos.actions.std(0),
        seed=seed,
        device=device,
        **policy_kwargs,
    )


def behaviour_clone(
    policy: ChunkFlowPolicy,
    demos: Any,
    steps: int = 10_000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    log_every: int = 100,
    tb_dir: str | Path | None = None,
    seed: int = 0,
) -> list[float]:
    """Train ``policy`` on ``demos`` for ``steps`` Adam steps of ``batch_size`` random
    (observation, chunk) pairs; cosine learning-rate decay to 0.

    Logs ``train/bc_loss`` (mean over the last ``log_every`` steps) and ``train/learning_rate``
    to TensorBoard under ``tb_dir``; returns those logged means.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps}, {batch_size}")
    dev = policy.device
    obs = torch.as_tensor(demos.obs, dtype=torch.float32, device=dev)
    chunks = torch.as_tensor(
        chunk_targets(demos.actions, demos.episode, policy.horizon), device=dev
    )
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    opt = torch.optim.AdamW(policy.net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    writer = None
    if tb_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(tb_dir))
    logged: list[float] = []
    window: list[float] = []
    policy.net.train()
    try:
        for step in range(steps):
            idx = torch.randint(len(obs), (batch_size,), generator=gen, device=dev)
            loss = policy.bc_loss(obs[idx], chunks[idx], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            policy.num_timesteps += 1
            window.append(loss.item())
            if len(window) == log_every or step == steps - 1:
                logged.append(float(np.mean(window)))
                if writer is not None:
                    writer.add_scalar("train/bc_loss", logged[-1], policy.num_timesteps)
                    writer.add_scalar(
                        "train/learning_rate", sched.get_last_lr()[0], policy.num_timesteps
                    )
                window = []
    finally:
        policy.net.eval()
        if writer is not None:
            writer.close()
    return logged


def clone_from_config(
    cfg_agent: Any,
    demos_path: str | Path | None,
    env_id: str,
    observation_space: spaces.Box,
    action_space: spaces.Box,
    seed: int,
    device: str,
    tb_dir: str | Path | None,
    env_kwargs: dict[str, Any] | None = None,
) -> ChunkFlowPolicy:
    """Load and check the demos, build the policy from ``cfg_agent.policy`` and train it with
    ``cfg_agent.bc`` (what ``rndx.train`` runs for ``agent=chunk_flow``). With ``env_kwargs``
    (the run's env options), demos recorded with other options train with a warning.

    :raises ValueError: if ``demos_path`` is None, or the demos do not fit the env or are empty.
    """
    from rndx.config import to_dict
    from rndx.demos import load_demos

    if demos_path is None:
        raise ValueError(
            "agent=chunk_flow learns from demonstrations: pass demos=<file.npz> "
            "(record one with `python -m rndx.demos env=<env> episodes=N`)"
        )
    bc = to_dict(cfg_agent.get("bc"))
    demos = load_demos(
        demos_path,
        env_id,
        observation_space.shape,
        action_space.shape,
        successful_only=bool(bc.pop("successful_only", True)),
        env_kwargs=env_kwargs,
    )
    policy = from_demos(
        demos, observation_space, action_space, seed, device, **to_dict(cfg_agent.get("policy"))
    )
    behaviour_clone(policy, demos, tb_dir=tb_dir, seed=seed, **bc)
    return policy
