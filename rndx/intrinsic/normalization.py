"""Running statistics for intrinsic rewards, as RND does them (Burda et al., 2018).

Both normalisers are ``nn.Module`` buffers so ``state_dict`` saves and restores them with
the networks (a resumed run continues with the same statistics).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class RunningMeanStd(nn.Module):
    """Mean and variance of a stream of batches (Chan et al.'s parallel update), float64.

    :param window: None (default): statistics of everything seen. An int: the old
        statistics weigh at most ``window`` samples when a batch is folded in, so they follow
        the last ~``window`` samples (a moving window) instead of all history.
    """

    def __init__(
        self, shape: tuple[int, ...] = (), epsilon: float = 1e-4, window: int | None = None
    ):
        super().__init__()
        if window is not None and window < 1:
            raise ValueError(f"window={window!r} must be None or >= 1 samples")
        self.window = window
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: np.ndarray | torch.Tensor) -> None:
        """Fold a batch (batch, *shape) into the statistics."""
        x = torch.as_tensor(x, dtype=torch.float64, device=self.mean.device)
        x = x.reshape(-1, *self.mean.shape)
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        if self.window is not None:
            self.count.clamp_(max=max(self.window - b_count, 1))
        delta = b_mean - self.mean
        total = self.count + b_count
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.mean += delta * b_count / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def normalize(self, x: torch.Tensor, clip: float | None = None) -> torch.Tensor:
        """(x - mean) / std, optionally clipped to [-clip, clip]; in x's dtype."""
        out = (x - self.mean.to(x.dtype)) / torch.sqrt(self.var.to(x.dtype) + 1e-8)
        return out.clamp(-clip, clip) if clip is not None else out

    @property
    def std(self) -> float:
        return float(torch.sqrt(self.var + 1e-8))


class IntrinsicRewardNormalizer(nn.Module):
    """Divide intrinsic rewards by the running std of the discounted intrinsic return.

    The return is accumulated over TIME for each environment separately:
    ``ret[e] <- gamma * ret[e] + r[t, e]`` for t = 0..T-1. CleanRL's ppo_rnd_envpool
    iterates over the transposed array and so accumulates across environments instead
    (vwxyzjn/cleanrl issue #360); rndx does not.

    :param window: None (RND): the std of every return seen so far. An int: the std over about
        the last ``window`` returns (see :class:`RunningMeanStd`), for runs short enough that
        the first rollouts' large bonuses would otherwise set the scale for the whole run.
    """

    def __init__(self, gamma: float, window: int | None = None):
        super().__init__()
        self.gamma = gamma
        self.rms = RunningMeanStd((), window=window)
        self.register_buffer("ret", torch.zeros(0, dtype=torch.float64))

    @torch.no_grad()
    def __call__(self, rewards: np.ndarray) -> np.ndarray:
        """rewards (T, n_envs) raw -> normalised (T, n_envs); updates the statistics."""
        rewards = np.asarray(rewards, dtype=np.float64)
        if self.ret.numel() != rewards.shape[1]:
            self.ret = torch.zeros(rewards.shape[1], dtype=torch.float64)
        ret = self.ret.detach().cpu().numpy().copy()  # a loaded state may sit on the GPU
        returns = np.empty_like(rewards)
        for t in range(rewards.shape[0]):
            ret = self.gamma * ret + rewards[t]
            returns[t] = ret
        self.ret = torch.from_numpy(ret)
        self.rms.update(returns.reshape(-1))
        return rewards / self.rms.std

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # the per-env return vector is sized by the first rollout; accept any saved size
        key = prefix + "ret"
        if key in state_dict:
            self.ret = torch.zeros_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
