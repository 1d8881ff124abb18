"""The interface every intrinsic reward module implements, independent of PPO.

A module sees inputs (a batch of next observations, or a chosen part of them, or the pose
from ``info``), returns a novelty bonus per input, and trains its predictor on batches of
inputs. The agent decides when to call what; the module never steps an environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rndx.intrinsic.normalization import IntrinsicRewardNormalizer, RunningMeanStd
from rndx.utils.checks import finite_number, whole_number


def mlp(sizes: Sequence[int], gain_last: float = 1.0) -> nn.Sequential:
    """ReLU MLP with orthogonal init (sqrt(2) gain for hidden layers, as in RND)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, gain=gain_last if last else np.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


POSE_SPECS = ("pose", "pose_tiles")


class InputSelector:
    """Which part of a transition feeds the module: ``"obs"`` (the whole observation),
    a list of observation indices, ``"pose"`` (``info["pose"]``: x, y, cos, sin) or
    ``"pose_tiles"`` (the pose's x, y tile-coded on the floor).

    Tile coding: ``tilings`` grids of ``tile_size`` m cells over the floor (``extent`` =
    width, height in m), grid t shifted by t * tile_size / tilings; the input is one one-hot
    vector per grid, concatenated. A random network on the raw 4-number pose is a smooth
    function of position, so RND's predictor fits it over the whole floor from the part the
    agent has seen and the bonus of unvisited floor falls with that of visited floor; on
    tiles, the weights a place's input reaches are trained only by visits to that place (and
    to places sharing a tile), so novelty stays local. (On the hard layout with gSDE this did
    not raise success over the raw pose: exploration results in README.)
    """

    def __init__(
        self,
        spec: str | Sequence[int] = "obs",
        extent: Sequence[float] | None = None,
        tile_size: float = 1.0,
        tilings: int = 2,
    ):
        if isinstance(spec, str) and spec not in ("obs", *POSE_SPECS):
            raise ValueError(
                f"intrinsic input={spec!r}; allowed: 'obs', 'pose', 'pose_tiles' or a list of "
                "observation indices"
            )
        self.spec = spec if isinstance(spec, str) else [int(i) for i in spec]
        self.extent = None if extent is None else (float(extent[0]), float(extent[1]))
        if spec == "pose_tiles":
            if self.extent is None or min(self.extent) <= 0:
                raise ValueError(
                    f"intrinsic input 'pose_tiles' needs the floor's extent (width, height) in "
                    f"m > 0, got {extent!r}; the rndx AGV envs provide it"
                )
            if not tile_size > 0 or int(tilings) < 1:
                raise ValueError(
                    f"pose_tiles: tile_size={tile_size!r} must be > 0 m and tilings={tilings!r} "
                    ">= 1"
                )
            self.tile_size, self.tilings = float(tile_size), int(tilings)
            self._offsets = np.arange(self.tilings) * self.tile_size / self.tilings
            w, h = self.extent
            # grid t: cells floor((x + offset_t) / tile) for x in [0, w]
            self._cells = [
                (int((w + o) // self.tile_size) + 1, int((h + o) // self.tile_size) + 1)
                for o in self._offsets
            ]
            self._starts = np.cumsum([0] + [nx * ny for nx, ny in self._cells])

    @property
    def binary_active(self) -> int | None:
        """Ones in every input when inputs are 0/1 (one active tile per grid), else None."""
        return self.tilings if self.spec == "pose_tiles" else None

    @property
    def uses_pose(self) -> bool:
        """True when the input comes from ``info["pose"]`` rather than the observation."""
        return self.spec in POSE_SPECS

    def dim(self, obs_dim: int) -> int:
        if self.spec == "obs":
            return obs_dim
        if self.spec == "pose":
            return 4
        if self.spec == "pose_tiles":
            return int(self._starts[-1])
        bad = [i for i in self.spec if not -obs_dim <= i < obs_dim]
        if bad:
            raise ValueError(f"intrinsic input indices {bad} out of range for obs_dim={obs_dim}")
        return len(self.spec)

    def from_poses(self, poses: np.ndarray) -> np.ndarray:
        """(n, 4) poses (x, y, cos, sin) -> (n, input_dim) inputs of a pose spec."""
        poses = np.asarray(poses, dtype=np.float32)
        if self.spec == "pose":
            return poses
        out = np.zeros((len(poses), int(self._starts[-1])), dtype=np.float32)
        rows = np.arange(len(poses))
        for t, (o, (nx, ny)) in enumerate(zip(self._offsets, self._cells)):
            ix = np.clip(np.floor((poses[:, 0] + o) / self.tile_size), 0, nx - 1).astype(np.int64)
            iy = np.clip(np.floor((poses[:, 1] + o) / self.tile_size), 0, ny - 1).astype(np.int64)
            out[rows, self._starts[t] + ix * ny + iy] = 1.0
        return out

    def __call__(
        self, obs: np.ndarray, infos: Sequence[dict[str, Any]] | None = None
    ) -> np.ndarray:
        """(n, *obs_shape) observations (+ per-env infos) -> (n, input_dim) inputs; an n-D
        observation is flattened first (observation indices count in the flat vector)."""
        obs = np.reshape(obs, (len(obs), -1))
        if self.spec == "obs":
            return obs
        if self.uses_pose:
            if not infos or "pose" not in infos[0]:
                raise KeyError(
                    f"intrinsic input {self.spec!r} needs info['pose'] from the env "
                    "(the rndx AGV envs provide it)"
                )
            return self.from_poses(np.array([i["pose"] for i in infos], dtype=np.float32))
        return obs[:, self.spec]


class IntrinsicModule(nn.Module):
    """Novelty bonus from a predictor trained against a fixed random target.

    Shared machinery: input normalisation (running mean/std, whitened input clipped to
    [-5, 5]) and intrinsic-return normalisation. Subclasses define ``_target`` (the frozen
    network's output), ``_bonus`` and ``_loss`` on normalised inputs.

    Writing your own (used as ``intrinsic="package.module:Class"``, see :mod:`rndx.intrinsic`):
    ``__init__(self, input_dim, **kwargs)`` passes ``kwargs`` (``gamma`` comes from the agent's
    ``gamma_int``; ``learning_rate``, ``update_proportion``, ``reward_norm_window`` ...) to
    this ``__init__``, sets ``self.output_dim`` (the size of one ``_target`` row) and ends with
    :meth:`_make_optimizer`. Per rollout the agent calls :meth:`compute` on the rollout's
    inputs (the bonuses), then :meth:`update_input_stats` once on the same inputs (override it,
    calling super, for per-input bookkeeping such as visit counts), then
    :meth:`training_batch`; :meth:`update_prepared` runs once per PPO minibatch, so ``n_epochs``
    times per input. (Before the first rollout :meth:`update_input_stats` also sees the
    ``init_steps`` random-action inputs.) State to save goes in parameters or buffers
    (``register_buffer``): the agent saves the module's ``state_dict`` and its optimiser. A
    module with nothing to train (no parameter that requires grad, e.g. counts in a buffer)
    gets no optimiser, and :meth:`update_prepared` then only reports ``_loss``. The config's
    ``intrinsic_kwargs`` are RND's (``hidden``, ``output_dim``, ``target_layers`` ...): accept
    them or replace them.

    :param input_dim: size of one input vector
    :param gamma: discount of the intrinsic return used for reward normalisation
    :param learning_rate: Adam learning rate of the predictor
    :param update_proportion: fraction of each batch the predictor trains on, so its
        effective batch stays constant as the number of envs grows (RND: 0.25 for 128 envs)
    :param obs_clip: clip of the whitened input
    :param reward_norm_window: None (RND): intrinsic rewards are divided by the std of every
        intrinsic return seen; an int: by the std of about the last that many returns
    :param binary_active: None for any input. An int k: every input is 0/1 with exactly k
        ones (one-hot groups, e.g. ``pose_tiles``). The first layer of both networks then
        adds up the k weight columns of the active features instead of multiplying the whole
        input: the same numbers as the dense path (the whitened input of a 0/1 feature takes
        one of two values), at a cost that does not grow with the input size.
    """

    def __init__(
        self,
        input_dim: int,
        gamma: float = 0.99,
        learning_rate: float = 1e-4,
        update_proportion: float = 1.0,
        obs_clip: float = 5.0,
        reward_norm_window: int | None = None,
        binary_active: int | None = None,
    ):
        super().__init__()
        if not 0.0 < update_proportion <= 1.0:
            raise ValueError(f"update_proportion={update_proportion!r} must be in (0, 1]")
        learning_rate = finite_number("learning_rate", learning_rate, 0.0, open_min=True)
        obs_clip = finite_number("obs_clip", obs_clip, 0.0, open_min=True)
        self.input_dim = input_dim
        self.learning_rate = learning_rate
        self.update_proportion = update_proportion
        self.obs_clip = obs_clip
        if binary_active is not None and not 1 <= binary_active <= input_dim:
            raise ValueError(f"binary_active={binary_active!r} must be in [1, {input_dim}]")
        self.binary_active = binary_active
        self.obs_rms = RunningMeanStd((input_dim,))
        self.reward_normalizer = IntrinsicRewardNormalizer(gamma, window=reward_norm_window)
        self.optimizer: torch.optim.Optimizer | None = None

    def _build_networks(self, hidden: int, output_dim: int, target_layers: int) -> None:
        """A frozen random ``target`` and a ``predictor`` one hidden layer deeper (RND's
        asymmetry, so the predictor can fit the target), then the predictor's optimiser."""
        hidden = whole_number("hidden", hidden, 1)
        output_dim = whole_number("output_dim", output_dim, 1)
        target_layers = whole_number("target_layers", target_layers, 1)
        self.output_dim = output_dim
        self.target = mlp([self.input_dim] + [hidden] * target_layers + [output_dim])
        self.predictor = mlp([self.input_dim] + [hidden] * (target_layers + 1) + [output_dim])
        self.target.requires_grad_(False)
        self._make_optimizer()

    def _make_optimizer(self) -> None:
        """Call at the end of a subclass __init__: covers the trainable (predictor) params;
        a module without any has nothing to train and gets no optimiser."""
        params = [p for p in self.parameters() if p.requires_grad]
        self._optimizer_made = True
        if not params:
            self.optimizer = None
            return
        # foreach: one kernel per step for all tensors, the same numbers as the per-tensor loop
        self.optimizer = torch.optim.Adam(params, lr=self.learning_rate, foreach=True)

    # --- subclass hooks, on normalised inputs -------------------------------------------
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the frozen random network (batch, out)."""
        raise NotImplementedError

    def _bonus(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample predictor loss (batch,) given the frozen network's output."""
        raise NotImplementedError

    # --- public interface ----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.obs_rms.mean.device

    def _prepare(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Whitened, clipped input; for ``binary_active`` inputs the (n, k) indices of the
        active features instead (see :meth:`_net`)."""
        x = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        if self.binary_active is None:
            return self.obs_rms.normalize(x, self.obs_clip)
        rows, cols = torch.nonzero(x, as_tuple=True)
        per_row = torch.bincount(rows, minlength=len(x))
        if not bool((per_row == self.binary_active).all() and (x[rows, cols] == 1).all()):
            raise ValueError(
                f"binary_active={self.binary_active}: every input must be 0/1 with exactly "
                f"{self.binary_active} ones; got {len(cols)} nonzeros in {len(x)} inputs"
            )
        return cols.reshape(len(x), self.binary_active)

    def _net(self, net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """``net`` on a prepared input. For active-feature indices, the first layer is
        W x_n + b with x_n the whitened input, x_n = c + sum over active j of (a_j - c_j) e_j,
        c = whitened 0 and a = whitened 1 of each feature: W c + b plus k weight columns."""
        if x.dtype != torch.long:
            return net(x)
        first = net[0]
        zero = torch.zeros((1, self.input_dim), dtype=torch.float32, device=x.device)
        c = self.obs_rms.normalize(zero, self.obs_clip)[0]
        delta = self.obs_rms.normalize(zero + 1.0, self.obs_clip)[0] - c
        h = first(c) + (first.weight.t()[x] * delta[x].unsqueeze(-1)).sum(dim=1)
        return net[1:](h)

    @torch.no_grad()
    def compute(self, inputs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Raw (unnormalised) bonus (n,) for a batch of inputs (n, input_dim)."""
        return self._bonus(self._prepare(inputs)).cpu().numpy()

    def update_input_stats(self, inputs: np.ndarray | torch.Tensor) -> None:
        self.obs_rms.update(inputs)

    def normalize_rewards(self, rewards: np.ndarray) -> np.ndarray:
        """(T, n_envs) raw bonuses -> divided by the running std of the intrinsic return."""
        return self.reward_normalizer(rewards)

    @torch.no_grad()
    def training_batch(
        self, inputs: np.ndarray | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised inputs and frozen-network outputs for :meth:`update_prepared`.

        The target is fixed, so an agent computes this once per rollout instead of once per
        minibatch and epoch (the same numbers, a fraction of the time)."""
        x = self._prepare(inputs)
        return x, self._target(x)

    def update(
        self, inputs: np.ndarray | torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """One predictor gradient step on a random ``update_proportion`` share of the batch."""
        return self.update_prepared(*self.training_batch(inputs), generator=generator)

    def update_prepared(
        self, x: torch.Tensor, target: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """:meth:`update` on the output of :meth:`training_batch` (or a minibatch of it)."""
        if self.optimizer is None:
            if not getattr(self, "_optimizer_made", False):
                raise RuntimeError(
                    f"{type(self).__name__}.__init__ must end with self._make_optimizer()"
                )
            with torch.no_grad():  # nothing to train
                return {"predictor_loss": float(self._loss(x, target).mean())}
        if self.update_proportion < 1.0:
            keep = torch.rand(len(x), generator=generator, device=x.device) < self.update_proportion
            if not keep.any():  # the draw kept no sample: no step (not one on the whole batch)
                with torch.no_grad():
                    return {"predictor_loss": float(self._loss(x, target).mean())}
            x, target = x[keep], target[keep]
        loss = self._loss(x, target).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"predictor_loss": float(loss.detach())}
