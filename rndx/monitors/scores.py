"""FIPER's two failure scores and their window aggregation (methods.md section 4).

RND-OE
    A random network distillation pair on the policy's frozen embedding h(o): a frozen,
    orthogonally initialised target g (4 layers) and a deeper trained predictor f (6 layers).
    s_O(o) = || f(h) - g(h) ||_2, the L2 norm (not its square) of the prediction error, on the
    embedding whitened with the statistics of the data it was fitted on. Fitted only on
    embeddings of successful rollouts, it grows where the policy sees something new.
ACE (action-chunk entropy)
    From B chunks (B, H, D) sampled for one observation: for every predicted step h, the B
    actions are put on a grid (cell width = ``factor`` x that dimension's range over the
    calibration set, grid anchored at the samples' minimum) and the Shannon entropy (nats) of
    the joint cell counts is taken; s_A = mean over h. A policy that knows what to do samples
    one tight mode (low entropy); an unsure one spreads its samples.
Window aggregation
    The sum of the last ``w`` scores (fewer at the start of an episode).

Non-finite input (an observation with NaN or inf) scores ``+inf``: out of distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from rndx.intrinsic.base import mlp

_STD_FLOOR = 1e-6


# ---------------------------------------------------------------------------- RND-OE
class RNDOE(nn.Module):
    """RND pair on embeddings; :meth:`score` gives || f(h) - g(h) ||_2 per row.

    :param input_dim: embedding size.
    :param hidden: width of every hidden layer.
    :param output_dim: size of the target's output.
    :param target_layers: linear layers of the target (FIPER: 4); the predictor has
        ``target_layers + 2`` (FIPER: 6), so it is deeper than the target.
    :param seed: seeds both initialisations.
    """

    def __init__(
        self,
        input_dim: int,
        hidden: int = 128,
        output_dim: int = 64,
        target_layers: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if input_dim < 1 or hidden < 1 or output_dim < 1 or target_layers < 1:
            raise ValueError(
                f"RNDOE sizes must be >= 1, got input_dim={input_dim}, hidden={hidden}, "
                f"output_dim={output_dim}, target_layers={target_layers}"
            )
        self.hparams = {
            "input_dim": int(input_dim),
            "hidden": int(hidden),
            "output_dim": int(output_dim),
            "target_layers": int(target_layers),
            "seed": int(seed),
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # mlp() = orthogonal init; n linear layers = n - 1 hidden widths
            self.target = mlp([input_dim] + [hidden] * (target_layers - 1) + [output_dim])
            self.predictor = mlp([input_dim] + [hidden] * (target_layers + 1) + [output_dim])
        self.target.requires_grad_(False)
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("std", torch.ones(input_dim))
        self._np: dict[str, list[tuple[np.ndarray, np.ndarray]]] | None = None

    def load_state_dict(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self._np = None
        return super().load_state_dict(*args, **kwargs)

    def _numpy(self) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
        """(weight.T, bias) per linear layer as numpy, cached: scoring one embedding per
        control step through 13 torch modules costs more in call overhead than in maths."""
        if self._np is None:
            self._np = {
                name: [
                    (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
                    for m in net
                    if isinstance(m, nn.Linear)
                ]
                for name, net in (("target", self.target), ("predictor", self.predictor))
            }
        return self._np

    def _x(self, h: torch.Tensor) -> torch.Tensor:
        return (h - self.mean) / self.std

    def fit(
        self,
        embeddings: np.ndarray,
        epochs: int = 50,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        seed: int = 0,
    ) -> list[float]:
        """Set the whitening statistics from ``embeddings`` (N, E) and train the predictor
        for ``epochs`` passes of Adam; return the mean loss per epoch."""
        h = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        if h.ndim != 2 or h.shape[1] != self.hparams["input_dim"] or len(h) < 2:
            raise ValueError(
                f"embeddings of shape {tuple(h.shape)}; expected (N >= 2, "
                f"{self.hparams['input_dim']})"
            )
        if not torch.isfinite(h).all():
            raise ValueError("embeddings to fit RND-OE on contain NaN or inf")
        self._np = None
        self.mean.copy_(h.mean(0))
        self.std.copy_(h.std(0).clamp_min(_STD_FLOOR))
        x = self._x(h)
        with torch.no_grad():
            y = self.target(x)
        gen = torch.Generator().manual_seed(int(seed))
        opt = torch.optim.Adam(self.predictor.parameters(), lr=learning_rate)
        losses = []
        for _ in range(int(epochs)):
            perm = torch.randperm(len(x), generator=gen)
            total = 0.0
            for start in range(0, len(x), batch_size):
                idx = perm[start : start + batch_size]
                loss = ((self.predictor(x[idx]) - y[idx]) ** 2).sum(1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / len(x))
        self._np = None
        return losses

    def score(self, embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N,) float64 scores for embeddings (N, E); non-finite rows score +inf."""
        h = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.hparams["input_dim"])
        bad = ~np.isfinite(h).all(axis=1)
        mean, std = self.mean.numpy(), self.std.numpy()
        x = (np.nan_to_num(h, nan=0.0, posinf=0.0, neginf=0.0) - mean) / std
        nets = self._numpy()

        def forward(layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
            y = x
            for i, (w, b) in enumerate(layers):
                y = y @ w + b
                if i < len(layers) - 1:
                    y = np.maximum(y, 0.0)
            return y

        diff = forward(nets["predictor"]) - forward(nets["target"])
        s = np.sqrt(np.sum(diff.astype(np.float64) ** 2, axis=1))
        s[bad] = np.inf
        return s


# ---------------------------------------------------------------------------- ACE
def cell_widths(actions: np.ndarray, factor: float = 0.03, dims: Sequence[int] | None = None):
    """Cell width per chosen dimension: ``factor`` x (max - min) of ``actions`` (..., D) over
    all leading axes (the calibration set). A dimension that never varied gets width
    ``factor`` (as if its range were 1), so the grid stays finite."""
    if not factor > 0:
        raise ValueError(f"ACE cell factor must be > 0, got {factor}")
    a = np.asarray(actions, dtype=np.float64)
    a = a.reshape(-1, a.shape[-1])
    if dims is not None:
        a = a[:, list(dims)]
    a = a[np.isfinite(a).all(axis=1)]
    if len(a) == 0:
        raise ValueError("no finite calibration actions to take ACE cell widths from")
    span = a.max(0) - a.min(0)
    return factor * np.where(span > 0, span, 1.0)


def ace(chunks: np.ndarray, widths: np.ndarray, dims: Sequence[int] | None = None) -> np.ndarray:
    """Action-chunk entropy of sampled chunks.

    :param chunks: (B, H, D) for one observation or (n, B, H, D) for n observations.
    :param widths: cell width per chosen dimension (from :func:`cell_widths`).
    :param dims: the action dimensions to histogram (default: all).
    :return: scalar (one observation) or (n,) float64: mean over the H steps of the Shannon
        entropy (nats) of the B samples' joint cell counts; +inf where a sample is not finite.
    """
    c = np.asarray(chunks, dtype=np.float64)
    single = c.ndim == 3
    if single:
        c = c[None]
    if c.ndim != 4:
        raise ValueError(f"chunks of shape {np.shape(chunks)}; expected (B, H, D) or (n, B, H, D)")
    if dims is not None:
        c = c[..., list(dims)]
    n, b, h, d = c.shape
    w = np.asarray(widths, dtype=np.float64).reshape(-1)
    if w.shape != (d,):
        raise ValueError(f"{w.size} cell widths for {d} action dimensions")
    finite = np.isfinite(c).all(axis=(1, 2, 3))
    c = np.where(np.isfinite(c), c, 0.0)
    # cell index per sample and dimension, grid anchored at the samples' minimum
    idx = np.floor((c - c.min(axis=1, keepdims=True)) / w).astype(np.int64)  # (n, B, H, d)
    # one integer per joint cell: mixed radix with the largest index + 1 per dimension
    key = np.zeros((n, b, h), dtype=np.int64)
    for j in range(d):
        key = key * (int(idx[..., j].max()) + 1) + idx[..., j]
    rows = np.sort(key.transpose(0, 2, 1).reshape(n * h, b), axis=1)  # (n*H, B)
    new = np.ones_like(rows, dtype=bool)
    new[:, 1:] = rows[:, 1:] != rows[:, :-1]
    run = np.cumsum(new, axis=1) - 1 + (np.arange(n * h) * b)[:, None]
    counts = np.bincount(run.ravel(), minlength=n * h * b).reshape(n * h, b)
    p = counts / b
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    out = ent.reshape(n, h).mean(axis=1)
    out[~finite] = np.inf
    return float(out[0]) if single else out


# ---------------------------------------------------------------------------- windows
def window_sums(scores: np.ndarray, window: int) -> np.ndarray:
    """Sliding-window sums along the last axis: out[..., t] = sum of scores[..., t-w+1 : t+1]
    (fewer terms for t < w - 1). +inf stays +inf."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    s = np.asarray(scores, dtype=np.float64)
    inf = np.isinf(s) & (s > 0)
    finite = np.where(inf, 0.0, s)
    c = np.cumsum(finite, axis=-1)
    out = c.copy()
    out[..., window:] = c[..., window:] - c[..., :-window]
    ninf = np.cumsum(inf, axis=-1)
    ninf_w = ninf.copy()
    ninf_w[..., window:] = ninf[..., window:] - ninf[..., :-window]
    return np.where(ninf_w > 0, np.inf, out)
