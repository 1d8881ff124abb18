"""Random Network Distillation (Burda et al., 2018, arXiv 1810.12894)."""

from __future__ import annotations

import torch

from rndx.intrinsic.base import IntrinsicModule


class RND(IntrinsicModule):
    """r_int(s') = ||f(s') - g(s')||^2 with g a frozen random target and f a trained,
    deeper predictor, both on the normalised input.

    :param hidden: hidden width of both networks
    :param output_dim: embedding size the predictor regresses onto
    :param target_layers: hidden layers of the target; the predictor has one more
    """

    def __init__(
        self,
        input_dim: int,
        hidden: int = 256,
        output_dim: int = 64,
        target_layers: int = 2,
        **kwargs,
    ):
        super().__init__(input_dim, **kwargs)
        self._build_networks(hidden, output_dim, target_layers)

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._net(self.target, x)

    def _bonus(self, x: torch.Tensor) -> torch.Tensor:
        return self._loss(x, self._target(x))

    def _loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((self._net(self.predictor, x) - target) ** 2).sum(dim=1)
