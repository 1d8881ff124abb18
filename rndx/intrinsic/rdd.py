"""Random Distribution Distillation (Fang et al., 2025, arXiv 2505.11044)."""

from __future__ import annotations

import torch

from rndx.intrinsic.base import IntrinsicModule


class RDD(IntrinsicModule):
    """Like RND, but the target of a state is a fresh sample N(mu(s), sigma^2) at every
    visit, with mu a frozen random network. The predictor regresses onto the samples:

        loss  = ||f(s) - (mu(s) + sigma * eps)||^2,   eps ~ N(0, I)
        bonus = (1/d) ||f(s) - mu(s)||^2              (against the MEAN)

    After n visits the predictor sits about sigma^2/n from mu in expectation, so the bonus
    decays like a pseudo-count 1/n plus a prediction-error term.

    :param sigma: std of the target distribution (paper: 1)
    :param learning_rate: the predictor's Adam step size (paper: 3e-4; RND's default is 1e-4)
    """

    def __init__(
        self,
        input_dim: int,
        hidden: int = 64,
        output_dim: int = 64,
        target_layers: int = 2,
        sigma: float = 1.0,
        learning_rate: float = 3e-4,
        **kwargs,
    ):
        super().__init__(input_dim, learning_rate=learning_rate, **kwargs)
        if sigma < 0:
            raise ValueError(f"sigma={sigma!r} must be >= 0")
        self.sigma = sigma
        self._build_networks(hidden, output_dim, target_layers)

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._net(self.target, x)  # the mean mu(s)

    def _bonus(self, x: torch.Tensor) -> torch.Tensor:
        return ((self._net(self.predictor, x) - self._target(x)) ** 2).sum(dim=1) / self.output_dim

    def _loss(self, x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        sample = mu + self.sigma * torch.randn_like(mu)  # a fresh target at every visit
        return ((self._net(self.predictor, x) - sample) ** 2).sum(dim=1)
