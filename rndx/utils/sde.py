"""One gSDE noise draw per episode when a gSDE policy is sampled outside training.

SB3's gSDE policies (``use_sde=True``) add noise ``latent(s) @ M`` with an exploration matrix
``M`` that only ``policy.reset_noise`` redraws; training redraws it for every env at the
start of each rollout (and every ``sde_sample_freq`` steps), but ``predict`` never does. So
stochastic evaluation or monitoring rollouts of a loaded gSDE agent would all share one
``M``: one fixed controller, not samples of the policy. :func:`resample_sde_noise` gives
each episode its own draw at its first step, as gSDE samples per episode (Raffin et al.,
2022), and leaves running episodes' draws alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def resample_sde_noise(model: Any, n: int, episode_start: Any = None) -> None:
    """Before a stochastic ``model.predict`` on a batch of ``n`` observations: draw a fresh
    exploration matrix for each env whose episode starts (``episode_start``, one flag per
    env), and for all ``n`` when the stored matrices are for another batch size (the first
    call). ``episode_start=None`` keeps the current draws. No-op for non-gSDE models.
    """
    policy = getattr(model, "policy", None)
    if not getattr(model, "use_sde", False) or policy is None:
        return
    dist = policy.action_dist
    mats = getattr(dist, "exploration_matrices", None)
    if mats is None or not hasattr(dist, "weights_dist") or len(mats) != n:
        policy.reset_noise(n)
        return
    if episode_start is None:
        return
    starts = np.asarray(episode_start, dtype=bool).reshape(-1)
    if n == 1:  # SB3 uses its single matrix for a batch of one
        if starts[0]:
            policy.reset_noise(1)
        return
    idx = np.flatnonzero(starts)
    if len(idx):
        with torch.no_grad():
            mats[torch.as_tensor(idx, device=mats.device)] = dist.weights_dist.sample((len(idx),))
