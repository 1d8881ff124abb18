"""The calibrated FIPER monitor, the monitored policy, its Gymnasium wrapper, and persistence.

:class:`Monitor` holds what calibration produced: the RND-OE pair, ACE's cell widths and the
two thresholds. :func:`calibrate` makes one from successful rollouts:

1. the rollouts are split in order: the first ``fit_fraction`` fit the scores (RND-OE's
   predictor and whitening, ACE's cell widths), the rest set the thresholds. Fitting and
   thresholding on the same rollouts would score the calibration set lower than fresh
   rollouts and break the conformal guarantee (FIPER fits and calibrates on the same set).
2. every observation of the threshold rollouts is scored, windowed, and each score gets its
   threshold (:mod:`rndx.monitors.calibration`).

:class:`MonitoredPolicy` acts with the policy and, at every step, scores the observation
(embedding -> RND-OE; B sampled chunks -> ACE), adds it to the window, compares with the
thresholds of that step and applies the alarm rule; the alarm latches for the episode.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rndx.monitors.alarms import check_rule, first_alarm, rule_holds
from rndx.monitors.calibration import (
    KINDS,
    at_steps,
    cp_joint,
    min_calibration,
    rollouts_needed,
    thresholds,
)
from rndx.monitors.policies import (
    as_monitorable,
    checked_chunks,
    checked_embed,
    flat_observations,
    invalid_rows,
    observation_limits,
    observation_size,
)
from rndx.monitors.scores import RNDOE, ace, cell_widths, window_sums
from rndx.utils.checks import finite_number, whole_number
from rndx.utils.io import atomic_save, load_torch_state, short_reason

_FORMAT = "rndx.monitor/1"
_SCORE_BLOCK = 256  # observations per batched chunk-sampling call while calibrating


def reuse_score_fn(adapter: Any):
    """The exploration-RND scorer of ``adapter``'s agent for ``rnd='reuse'``.

    :raises ValueError: if the policy has none (only IntrinsicPPO agents do)."""
    fn = getattr(adapter, "intrinsic_score_fn", None)
    if fn is None:
        raise ValueError(
            f"rnd='reuse' needs an IntrinsicPPO agent with an RND module; got "
            f"{type(getattr(adapter, 'policy', adapter)).__name__} (use rnd='fit')"
        )
    return fn()


def check_joint_rule(threshold: str, rule: str) -> None:
    """``cp_joint`` thresholds calibrate the AND alarm itself, each score's threshold lower
    than its own conformal one: another rule on them would alarm far above delta."""
    if threshold == "cp_joint" and rule != "and":
        raise ValueError(
            f"rule={rule!r} with threshold='cp_joint': joint thresholds calibrate the AND "
            "alarm only (a single score or OR against them alarms far more often than "
            "delta); use rule='and', or calibrate with threshold='cp_constant'"
        )


@dataclass
class MonitorConfig:
    """Settings of a monitor (saved with it).

    :param delta: target false-alarm rate per successful rollout, in (0, 1).
    :param window: w, the sliding-window length of the score sums.
    :param rule: ``and`` (FIPER), ``or``, ``rnd_oe`` or ``ace``.
    :param threshold: ``cp_constant`` (guarantee), ``cp_band`` (guarantee, split),
        ``time_varying`` (per-step quantile, no guarantee) or ``cp_joint`` (the AND alarm
        itself calibrated to delta; see :mod:`rndx.monitors.calibration`).
    :param n_samples: B, chunks sampled per step for ACE.
    :param score_every: score every k-th step of an episode (steps 0, k, 2k, ...): FIPER
        scores once per predicted chunk, so k = the chunk policy's ``execute``; 1 for a
        policy that predicts every step. Between scored steps the last scores and
        thresholds hold; windows count scored steps.
    :param ace_factor: ACE cell width as a fraction of each dimension's calibration range.
    :param ace_dims: action dimensions ACE histograms (None: all).
    :param rnd: ``fit`` (a new RND pair on the embedding) or ``reuse`` (the RND module that
        drove the agent's exploration, IntrinsicPPO only).
    :param fit_fraction: share of the calibration rollouts that fit the scores.
    :param rnd_epochs: passes of the predictor over the fitting embeddings.
    :param seed: seeds the RND pair.
    """

    delta: float = 0.1
    window: int = 10
    rule: str = "and"
    threshold: str = "cp_constant"
    n_samples: int = 64
    score_every: int = 1
    ace_factor: float = 0.03
    ace_dims: list[int] | None = None
    rnd: str = "fit"
    fit_fraction: float = 0.5
    rnd_epochs: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        self.delta = finite_number("delta", self.delta, 0.0, 1.0, open_min=True, open_max=True)
        self.window = whole_number("window", self.window, 1)
        check_rule(self.rule)
        if self.threshold not in (*KINDS, "cp_joint"):
            raise ValueError(f"threshold={self.threshold!r}; allowed: {[*KINDS, 'cp_joint']}")
        self.score_every = whole_number("score_every", self.score_every, 1)
        self.n_samples = whole_number("n_samples", self.n_samples, 2, " (ACE needs a spread)")
        self.ace_factor = finite_number("ace_factor", self.ace_factor, 0.0, open_min=True)
        if self.rnd not in ("fit", "reuse"):
            raise ValueError(f"rnd={self.rnd!r}; allowed: 'fit', 'reuse'")
        self.fit_fraction = finite_number(
            "fit_fraction", self.fit_fraction, 0.0, 1.0, open_min=True, open_max=True
        )
        self.rnd_epochs = whole_number("rnd_epochs", self.rnd_epochs, 0)
        self.seed = whole_number("seed", self.seed, 0)
        if self.ace_dims is not None:
            self.ace_dims = [whole_number("ace_dims entry", d, 0) for d in self.ace_dims]
            if not self.ace_dims:
                raise ValueError("ace_dims=[] leaves ACE no action dimension; None for all")

    def min_rollouts(self) -> int:
        """Successful calibration rollouts needed for ``delta`` with this split, exactly (one
        fewer is an error): the first ``n_fit(n)`` fit the scores, the other ``n - n_fit(n)``
        set the thresholds and must be as many as the threshold kind needs
        (:func:`rndx.monitors.calibration.rollouts_needed`; ``time_varying``, which promises
        nothing, is still asked for as many as ``cp_constant``)."""
        need = max(min_calibration(self.delta), rollouts_needed(self.delta, self.threshold))
        # n - n_fit(n) grows by 0 or 1 with n: the first n that leaves `need` is the minimum;
        # start below it (n - n_fit(n) <= (1 - fit_fraction) n + 1/2, and n_fit >= 1)
        n = max(need + 1, math.floor((need - 0.5) / (1.0 - self.fit_fraction)) - 1)
        while n - self.n_fit(n) < need:
            n += 1
        return n

    def n_fit(self, n: int) -> int:
        return max(1, int(round(self.fit_fraction * n)))


@dataclass
class Monitor:
    """A calibrated detector: scores, windows, thresholds (independent of any episode)."""

    config: MonitorConfig
    widths: np.ndarray
    rnd_threshold: np.ndarray
    ace_threshold: np.ndarray
    rnd_oe: RNDOE | None = None
    info: dict[str, Any] = field(default_factory=dict)
    rnd_fn: Any = None  # rnd='reuse': the agent's own RND scorer (rebuilt on load)
    # the calibrated policy's class and sizes: obs_dim, embedding_dim (rnd='fit'), action_dim
    policy_spec: dict[str, Any] | None = None

    # -------------------------------------------------------------- scoring
    def rnd_scores(self, embeddings: np.ndarray, obs: np.ndarray | None = None) -> np.ndarray:
        if self.config.rnd == "reuse":
            if self.rnd_fn is None:
                raise ValueError(
                    "this rnd='reuse' monitor scores with its agent's RND: use it through "
                    "load_monitor(path, agent) or MonitoredPolicy(agent, monitor)"
                )
            return self.rnd_fn(obs)
        return self.rnd_oe.score(embeddings)

    def ace_scores(self, chunks: np.ndarray) -> np.ndarray:
        return ace(chunks, self.widths, self.config.ace_dims)

    def raw_scores(
        self, adapter: Any, obs: np.ndarray, bad: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rnd_oe, ace) per-step scores (n,) for observations (n, obs_dim); ``bad`` (n,): the
        impossible rows (:func:`invalid_rows`: NaN, inf, beyond the observation space)."""
        if self.config.rnd == "reuse" and self.rnd_fn is None:  # loaded: bind the agent's RND
            self.rnd_fn = reuse_score_fn(adapter)
        obs = np.asarray(obs, dtype=np.float32)
        clean = np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
        fit = self.config.rnd == "fit"
        emb = checked_embed(adapter, clean, self.rnd_oe.hparams["input_dim"]) if fit else None
        r = self.rnd_scores(emb, clean)
        a = self.ace_scores(checked_chunks(adapter, clean, self.config.n_samples))
        r, a = np.asarray(r, np.float64), np.asarray(a, np.float64)
        r[bad], a[bad] = np.inf, np.inf  # an impossible observation is out of distribution
        return r, a

    def thresholds_at(self, scored_step: int | np.ndarray):
        """Thresholds at the given index (or indices) of scored steps."""
        return at_steps(self.rnd_threshold, scored_step), at_steps(self.ace_threshold, scored_step)

    def alarm_step(
        self, rnd_raw: np.ndarray, ace_raw: np.ndarray, rule: str | None = None
    ) -> int | None:
        """First alarm step (env step) of one episode's raw score traces (one value per
        scored step) under ``rule`` (default: the monitor's)."""
        w, rule = self.config.window, rule or self.config.rule
        rs, as_ = window_sums(rnd_raw, w), window_sums(ace_raw, w)
        t = np.arange(len(rs))
        if self.config.threshold == "cp_joint" and rule != "and":
            # joint thresholds calibrate the AND alarm only: the other rules compare each
            # score with its own conformal (cp_constant) threshold, set on the same rollouts
            single = self.info.get("cp_constant_thresholds")
            if single is None:
                raise ValueError(
                    f"rule={rule!r} on a cp_joint monitor needs its cp_constant thresholds, "
                    "which monitors calibrated before they were stored lack: recalibrate"
                )
            r_th, a_th = (np.full(len(t), float(v)) for v in single)
        else:
            r_th, a_th = self.thresholds_at(t)
        first = first_alarm(rule_holds(rule, rs > r_th, as_ > a_th))
        return None if first is None else first * self.config.score_every

    # -------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "config": asdict(self.config),
            "widths": torch.as_tensor(self.widths),
            "rnd_threshold": torch.as_tensor(self.rnd_threshold),
            "ace_threshold": torch.as_tensor(self.ace_threshold),
            "rnd_oe_hparams": None if self.rnd_oe is None else self.rnd_oe.hparams,
            "rnd_oe": None if self.rnd_oe is None else self.rnd_oe.state_dict(),
            "info": self.info,
            "policy": self.policy_spec,
        }

    def save(self, path: str | Path) -> Path:
        """One file, written atomically."""
        state = self.state_dict()
        return atomic_save(lambda p: torch.save(state, p), path)

    @classmethod
    def load(cls, path: str | Path) -> Monitor:
        """:raises FileNotFoundError, ValueError: missing, corrupt or foreign file."""
        s = load_torch_state(path, _FORMAT, "monitor file")
        bad = f"{str(path)!r} is corrupt or not an rndx monitor file"
        try:
            rnd = None
            if s["rnd_oe"] is not None:
                rnd = RNDOE(**s["rnd_oe_hparams"])
                rnd.load_state_dict(s["rnd_oe"])
            arrays = [s[k].numpy() for k in ("widths", "rnd_threshold", "ace_threshold")]
            for k, a in zip(("widths", "rnd_threshold", "ace_threshold"), arrays, strict=True):
                if a.ndim != 1 or a.size == 0 or np.isnan(a).any():
                    raise ValueError(f"{k} of shape {a.shape}: expected a non-empty 1-D array")
            return cls(
                MonitorConfig(**s["config"]),
                *arrays,
                rnd,
                dict(s["info"]),
                policy_spec=s.get("policy"),  # absent in older files: not checked
            )
        except (KeyError, TypeError, AttributeError, RuntimeError, ValueError) as exc:
            raise ValueError(f"{bad} ({short_reason(exc)})") from exc


def score_traces(
    monitor: Monitor, adapter: Any, traces: Sequence[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Raw (rnd_oe, ace) score traces of whole episodes (T_i, obs_dim), at the scored steps
    0, k, 2k, ... (k = ``score_every``), scored in large batches (identical to scoring them
    step by step)."""
    if not traces:
        return []
    k = monitor.config.score_every
    traces = [np.asarray(t, dtype=np.float32)[::k] for t in traces]
    flat = np.concatenate(traces)
    bad = invalid_rows(flat, observation_limits(adapter))
    r, a = np.empty(len(flat)), np.empty(len(flat))
    for s in range(0, len(flat), _SCORE_BLOCK):
        block = slice(s, s + _SCORE_BLOCK)
        r[block], a[block] = monitor.raw_scores(adapter, flat[block], bad[block])
    cuts = np.cumsum([len(t) for t in traces])[:-1]
    return list(zip(np.split(r, cuts), np.split(a, cuts), strict=True))


def _calibration_traces(adapter: Any, calibration: Any) -> list[np.ndarray]:
    """The calibration rollouts as float32 (T_i, obs_dim) arrays, or a ValueError naming the
    first rollout (and step) that is not one: a wrong shape, a width unlike the first
    rollout's, or an observation no env gives (NaN, inf, beyond the observation space)."""
    expected = (
        "a list of (T_i >= 1, obs_dim) observation arrays, one per successful rollout (or "
        "one (n_rollouts, T, obs_dim) array of equal-length rollouts)"
    )
    if isinstance(calibration, np.ndarray) and calibration.ndim >= 3:
        calibration = list(calibration)  # stacked equal-length rollouts
    if isinstance(calibration, (str, bytes, np.ndarray)) or not hasattr(calibration, "__iter__"):
        raise ValueError(f"calibration must be {expected}; got {type(calibration).__name__}")
    limits = observation_limits(adapter)
    dim = observation_size(adapter)
    traces = []
    for i, t in enumerate(calibration):
        try:
            x = np.asarray(t, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"calibration rollout {i} is not numeric ({exc})") from None
        width = traces[0].shape[1] if traces else None
        try:
            x, _ = flat_observations(adapter, x, dim, batch=True)
        except ValueError as exc:
            raise ValueError(f"calibration rollout {i} {exc}") from None
        if len(x) == 0 or (width is not None and x.shape[1] != width):
            want = f"(T, {width})" if width is not None else "(T >= 1, obs_dim)"
            raise ValueError(f"calibration rollout {i} has shape {x.shape}; expected {want}")
        bad = np.flatnonzero(invalid_rows(x, limits))
        if len(bad):
            raise ValueError(
                f"calibration rollout {i}, step {bad[0]}: the observation holds NaN or inf or "
                "lies beyond the policy's observation space; calibrate on real successful "
                "rollouts"
            )
        traces.append(x)
    return traces


def calibrate(
    policy: Any,
    calibration: Sequence[np.ndarray],
    config: MonitorConfig | None = None,
    return_scores: bool = False,
) -> Monitor | tuple[Monitor, list[tuple[np.ndarray, np.ndarray]]]:
    """Fit and calibrate a monitor of ``policy`` on the observation traces (T_i, obs_dim) of
    SUCCESSFUL rollouts (failures must not be in ``calibration``).

    :param return_scores: also return the raw (rnd_oe, ace) traces of the threshold rollouts
        (to study other windows or threshold kinds without scoring again).

    :raises ValueError: too few rollouts for ``delta`` (the message says how many are needed).
    """
    cfg = config or MonitorConfig()
    check_joint_rule(cfg.threshold, cfg.rule)
    adapter = as_monitorable(policy)
    traces = _calibration_traces(adapter, calibration)
    need = cfg.min_rollouts()
    if len(traces) < need:
        raise ValueError(
            f"{len(traces)} successful calibration rollouts are too few for delta={cfg.delta} "
            f"({cfg.threshold}, fit_fraction={cfg.fit_fraction}): at least {need} are needed"
        )
    n_fit = cfg.n_fit(len(traces))
    fit, cal = traces[:n_fit], traces[n_fit:]
    fit_obs = np.concatenate(fit)
    rnd_oe, rnd_fn = None, None
    info: dict[str, Any] = {"n_rollouts": len(traces), "n_fit": n_fit, "n_threshold": len(cal)}
    spec: dict[str, Any] = {"class": type(policy).__name__, "obs_dim": int(fit_obs.shape[1])}
    spec["embedding_dim"] = None
    if cfg.rnd == "fit":
        emb = checked_embed(adapter, fit_obs)
        spec["embedding_dim"] = int(emb.shape[1])
        rnd_oe = RNDOE(emb.shape[1], seed=cfg.seed)
        info["rnd_losses"] = rnd_oe.fit(emb, epochs=cfg.rnd_epochs, seed=cfg.seed)[-1:]
    else:
        rnd_fn = reuse_score_fn(adapter)
    scored_obs = np.concatenate([t[:: cfg.score_every] for t in fit])
    chunks = np.concatenate(
        [
            checked_chunks(adapter, scored_obs[s : s + _SCORE_BLOCK], cfg.n_samples)
            for s in range(0, len(scored_obs), _SCORE_BLOCK)
        ]
    )
    spec["action_dim"] = int(chunks.shape[-1])
    widths = cell_widths(chunks, cfg.ace_factor, cfg.ace_dims)
    mon = Monitor(cfg, widths, np.zeros(1), np.zeros(1), rnd_oe, info, rnd_fn, spec)
    scored = score_traces(mon, adapter, cal)
    w = cfg.window
    rs, as_ = [window_sums(r, w) for r, _ in scored], [window_sums(a, w) for _, a in scored]
    if cfg.threshold == "cp_joint":
        mon.rnd_threshold, mon.ace_threshold = cp_joint(rs, as_, cfg.delta)
        # what the single-score and OR rules are compared with (evaluation tables)
        mon.info["cp_constant_thresholds"] = [
            float(thresholds(rs, cfg.delta, "cp_constant")[0]),
            float(thresholds(as_, cfg.delta, "cp_constant")[0]),
        ]
    else:
        mon.rnd_threshold = thresholds(rs, cfg.delta, cfg.threshold)
        mon.ace_threshold = thresholds(as_, cfg.delta, cfg.threshold)
    return (mon, scored) if return_scores else mon


def _takes_an_argument(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: assume reset(idx)
        return True
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in kinds or p.kind == inspect.Parameter.VAR_POSITIONAL for p in params)


class MonitoredPolicy:
    """A policy watched by a calibrated :class:`Monitor`.

    ``predict(obs)`` returns ``(action, step)`` where ``step`` is the monitor's dict for that
    observation (a list of dicts for a batch of observations):
    ``rnd_oe``, ``ace`` (windowed scores), ``rnd_oe_threshold``, ``ace_threshold`` (this
    step's thresholds), ``alarm`` (latched: the rule holds now or held earlier in the
    episode), ``alarm_step`` (first alarm step or None), ``step`` (index of the observation
    in the episode), plus the raw per-step scores ``rnd_oe_raw`` and ``ace_raw``.

    An observation with a NaN or inf, or with a value beyond the finite bounds of the policy's
    Box observation space (a broken sensor pipeline), is out of distribution on the step it
    arrives, scored step or not and whatever the rule: its scores are inf (and held as inf
    until the next scored step) and the alarm latches. The action is still the policy's own;
    for a NaN or inf it is NaN (a chunk policy replanning on it, an SB3 policy's row); act on
    ``step["alarm"]``.

    A batch of n observations is n envs, each in its own episode. The number of envs may
    change only where all of them start new episodes (``episode_start`` True for every
    observation, or after ``reset()``); a change mid-episode is a ValueError, as it would drop
    the latched alarms.

    Episodes: pass ``episode_start`` (SB3's flags: True for an env's first observation) or
    call ``reset()`` between episodes; otherwise the window, the step count (which indexes
    ``cp_band`` / ``time_varying`` thresholds) and a latched alarm carry on into the next
    episode.

    Scoring (``observe``) needs only the policy's ``embed`` and ``sample_chunks``;
    ``predict`` acts with the policy's own ``predict`` (a TypeError if it has none). The
    policy's ``reset(idx)``, if it has one, is called for the envs whose episodes start (in
    ``predict``, and by ``reset()``); ``observe`` only watches and never calls it.

    :raises ValueError: if ``monitor`` was calibrated for a policy of other sizes
        (observation, embedding or action dim) than ``policy``.
    """

    def __init__(self, policy: Any, monitor: Monitor) -> None:
        if not isinstance(monitor, Monitor):
            raise TypeError(
                f"monitor must be a calibrated rndx Monitor (from calibrate() or Monitor.load); "
                f"got {type(monitor).__name__}"
            )
        check_joint_rule(monitor.config.threshold, monitor.config.rule)
        self.adapter = as_monitorable(policy)
        self._limits = observation_limits(self.adapter)  # checked on every observation
        self.policy = policy
        if monitor.config.rnd == "reuse":  # this policy's own RND, on a copy of the monitor
            monitor = dataclasses.replace(monitor, rnd_fn=reuse_score_fn(self.adapter))
        self.monitor = monitor
        dim = observation_size(self.adapter)
        self._check_sizes(monitor.policy_spec or {}, dim)
        if dim is None:  # a user's policy says nothing: the size it was calibrated with
            dim = (monitor.policy_spec or {}).get("obs_dim")
        self._obs_dim = None if dim is None else int(dim)
        reset = getattr(self.adapter, "reset", None)  # optional for a policy
        self._policy_reset = reset if callable(reset) else None
        self._reset_takes_idx = self._policy_reset is not None and _takes_an_argument(reset)
        self._n = 0

    def _check_sizes(self, spec: dict[str, Any], obs_dim: int | None) -> None:
        """Raise if the sizes the monitor was calibrated for differ from this policy's (a size
        either side does not know is not checked; a policy that does not say its observation
        size is probed with the calibrated one)."""
        space = getattr(self.adapter, "action_space", None)
        here: dict[str, int | None] = {
            "obs_dim": obs_dim,
            "action_dim": int(np.prod(space.shape)) if getattr(space, "shape", None) else None,
            "embedding_dim": None,
        }
        probe_dim = obs_dim if obs_dim is not None else spec.get("obs_dim")
        if probe_dim is not None:
            probe = np.zeros((1, int(probe_dim)), np.float32)
            if spec.get("embedding_dim") is not None:
                here["embedding_dim"] = int(checked_embed(self.adapter, probe).shape[1])
            if here["action_dim"] is None and spec.get("action_dim") is not None:
                here["action_dim"] = int(checked_chunks(self.adapter, probe, 2).shape[-1])
        diff = [k for k, v in here.items() if v is not None and spec.get(k) not in (None, v)]
        if diff:
            name = {"obs_dim": "observation", "embedding_dim": "embedding", "action_dim": "action"}
            was = ", ".join(f"{name[k]} dim {spec[k]}" for k in diff)
            now = ", ".join(f"{name[k]} dim {here[k]}" for k in diff)
            raise ValueError(
                f"this monitor was calibrated for a {spec.get('class', 'policy')} with {was}; "
                f"this {type(self.policy).__name__} has {now}: calibrate a monitor for it"
            )

    @property
    def config(self) -> MonitorConfig:
        return self.monitor.config

    def _ensure(self, n: int, flags: np.ndarray | None) -> None:
        if self._n != n:
            if self._n and (flags is None or not flags.all()):
                raise ValueError(
                    f"{n} observation(s) while {self._n} episode(s) run: the number of envs "
                    "may change only when all start new episodes (pass episode_start with "
                    "True for every observation, or call reset() first); alarms latch for "
                    "the episode"
                )
            w = self.config.window
            self._n = n
            self._rnd_buf, self._ace_buf = np.zeros((n, w)), np.zeros((n, w))
            self._step = np.zeros(n, dtype=np.int64)
            self._alarm = np.full(n, -1, dtype=np.int64)
            self._win, self._th, self._raw = np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 2))

    def reset(self, idx: Any = None) -> None:
        """Start new episodes for envs ``idx`` (all when None: then with any number of envs):
        scores, steps and alarms, and the policy's own ``reset(idx)`` if it has one."""
        self._reset_scores(idx)
        self._reset_policy(idx)

    def _reset_policy(self, idx: Any = None) -> None:
        """The policy's ``reset(idx)`` (optional); a ``reset()`` that takes no index resets
        all its envs, whichever start."""
        if self._policy_reset is None:
            return
        if idx is None or not self._reset_takes_idx:
            self._policy_reset()
        else:
            self._policy_reset(idx)

    def _reset_scores(self, idx: Any = None) -> None:
        if self._n == 0 or idx is None:
            self._n = 0  # the next observe starts afresh, with its own number of envs
            return
        sel = np.asarray(idx)
        self._rnd_buf[sel], self._ace_buf[sel] = 0.0, 0.0
        self._step[sel] = 0
        self._alarm[sel] = -1
        self._win[sel], self._th[sel], self._raw[sel] = 0.0, 0.0, 0.0

    def _as_obs(self, obs: Any) -> np.ndarray:
        """``obs`` as float32, or a ValueError saying what an observation is."""
        want = f"({self._obs_dim},) or (n, {self._obs_dim})" if self._obs_dim else "(obs_dim,)"
        if isinstance(obs, dict):
            raise ValueError(
                f"a dict observation (keys {sorted(obs)}); the monitor scores arrays: wrap "
                "the env in gymnasium.wrappers.FlattenObservation, as the policy saw it"
            )
        try:
            x = np.asarray(obs, dtype=np.float32)
        except (TypeError, ValueError):
            shown = repr(obs) if len(repr(obs)) <= 60 else repr(obs)[:57] + "..."
            raise ValueError(
                f"observation {shown} is not numeric; expected floats of shape {want}"
            ) from None
        if x.ndim == 0:
            raise ValueError(f"observation {obs!r} is a scalar; expected floats of shape {want}")
        return x

    def observe(self, obs: Any, episode_start: Any = None) -> dict[str, Any] | list[dict]:
        """Score one observation (or a batch) without acting; returns the step dict(s)."""
        x = self._as_obs(obs)
        return self._observe(x, *flat_observations(self.adapter, x, self._obs_dim), episode_start)

    def _observe(
        self, x: np.ndarray, x2: np.ndarray, single: bool, episode_start: Any
    ) -> dict[str, Any] | list[dict]:
        """:meth:`observe` of ``x`` flattened to rows ``x2`` (one observation: ``single``)."""
        n = len(x2)
        if n == 0:
            raise ValueError(f"an empty batch of observations (shape {x.shape}); expected >= 1")
        flags = None if episode_start is None else np.asarray(episode_start, dtype=bool)
        if flags is not None and flags.size != n:
            raise ValueError(
                f"episode_start of shape {flags.shape} for {n} observation(s); expected one "
                "flag per observation"
            )
        self._ensure(n, None if flags is None else flags.reshape(n))
        if flags is not None:
            starts = np.flatnonzero(flags.reshape(n))
            if len(starts):
                self._reset_scores(starts)
        k, w = self.config.score_every, self.config.window
        bad = invalid_rows(x2, self._limits)  # NaN, inf, or beyond the observation space
        due = np.flatnonzero(self._step % k == 0)  # envs scoring this step; others hold
        if len(due):
            r, a = self.monitor.raw_scores(self.adapter, x2[due], bad[due])
            j = self._step[due] // k  # index of this scored step
            self._rnd_buf[due, j % w], self._ace_buf[due, j % w] = r, a
            self._raw[due] = np.stack([r, a], axis=1)
            self._win[due, 0] = window_sums(self._rnd_buf[due], w)[:, -1]  # inf-aware sums
            self._win[due, 1] = window_sums(self._ace_buf[due], w)[:, -1]
            r_th, a_th = self.monitor.thresholds_at(j)
            self._th[due] = np.stack([r_th, a_th], axis=1)
            over = self._win[due] > self._th[due]
            holds = rule_holds(self.config.rule, over[:, 0], over[:, 1])
            new = due[holds & (self._alarm[due] < 0)]
            self._alarm[new] = self._step[new]
        # an impossible observation between scored steps alarms now, not at the next scored one
        held = np.flatnonzero((self._step % k != 0) & bad)
        if len(held):
            self._raw[held], self._win[held] = np.inf, np.inf
            new = held[self._alarm[held] < 0]
            self._alarm[new] = self._step[new]
        rs, as_ = self._win[:, 0], self._win[:, 1]
        r_th, a_th = self._th[:, 0], self._th[:, 1]
        r, a = self._raw[:, 0], self._raw[:, 1]
        out = [
            {
                "rnd_oe": float(rs[i]),
                "ace": float(as_[i]),
                "rnd_oe_threshold": float(r_th[i]),
                "ace_threshold": float(a_th[i]),
                "alarm": bool(self._alarm[i] >= 0),
                "alarm_step": None if self._alarm[i] < 0 else int(self._alarm[i]),
                "step": int(self._step[i]),
                "rnd_oe_raw": float(r[i]),
                "ace_raw": float(a[i]),
            }
            for i in range(n)
        ]
        self._step += 1
        return out[0] if single else out

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, dict[str, Any] | list[dict]]:
        """The policy's action and the monitor's dict(s) for this observation.

        :raises TypeError: if the policy has no ``predict`` (score with :meth:`observe`)."""
        if not callable(getattr(self.adapter, "predict", None)):
            raise TypeError(
                f"{type(self.policy).__name__} has no predict(obs, state=None, "
                "episode_start=None, deterministic=False) to act with: give it one, or act "
                "with your own controller and score with observe(obs) (or MonitorWrapper)"
            )
        x = self._as_obs(observation)  # the policy acts on the float32 array scored
        x2, single = flat_observations(self.adapter, x, self._obs_dim)  # shape checked
        n = len(x2)
        if episode_start is not None:  # before scoring: embed may read per-episode memory
            flags = np.asarray(episode_start, dtype=bool).reshape(-1)
            if flags.size == n and flags.all():  # all envs (their number may have changed)
                self._reset_policy(None)
            elif flags.size == n and flags.any():
                self._reset_policy(np.flatnonzero(flags))
        step = self._observe(x, x2, single, episode_start)
        action, _ = self.adapter.predict(
            x, state=state, episode_start=episode_start, deterministic=deterministic
        )
        return action, step

    def save(self, path: str | Path) -> Path:
        """Save the calibrated monitor (not the policy) to one file."""
        return self.monitor.save(path)


class MonitorWrapper(gym.Wrapper):
    """Puts the monitor's dict for each returned observation into ``info["monitor"]``.

    The wrapper only watches: act with the plain policy (``monitored.policy``), not with
    ``monitored.predict``, which would score each observation twice.
    """

    def __init__(self, env: gym.Env, monitored: MonitoredPolicy) -> None:
        super().__init__(env)
        self.monitored = monitored

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.monitored._reset_policy()
        info["monitor"] = self.monitored.observe(obs, episode_start=[True])
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["monitor"] = self.monitored.observe(obs)
        return obs, reward, terminated, truncated, info


def monitor(
    policy: Any,
    calibration: Sequence[np.ndarray] | str | Path | Monitor,
    delta: float | None = None,
    window: int | None = None,
    rule: str | None = None,
    **options: Any,
) -> MonitoredPolicy:
    """Monitor ``policy`` (chunk policy, SB3 agent with Box observation and action spaces, or
    anything with ``embed`` and ``sample_chunks``; ``predict`` only to act through the
    monitored policy).

    :param calibration: observation traces (T_i, obs_dim) of successful rollouts to calibrate
        on (collected as the policy will run: for an SB3 agent with gSDE, one noise draw per
        episode, see README); or a saved monitor file, or a calibrated :class:`Monitor`: then
        delta, window and the options are the calibrated ones (giving others is an error) and
        only ``rule`` may change, on a copy.
    :param delta: target false-alarm rate per successful rollout (default 0.1).
    :param window: sliding-window length (default 10).
    :param rule: ``and`` (FIPER, the default for a new calibration), ``or``, ``rnd_oe`` or
        ``ace``; None keeps a saved monitor's rule.
    :param options: further :class:`MonitorConfig` fields (threshold, n_samples, ...).
    """
    fields = {f.name for f in dataclasses.fields(MonitorConfig)} - {"delta", "window", "rule"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise TypeError(f"unknown monitor option(s) {unknown}; allowed: {sorted(fields)}")
    if isinstance(calibration, str | Path):
        calibration = Monitor.load(calibration)
    if isinstance(calibration, Monitor):
        cfg = calibration.config
        given = {k: v for k, v in (("delta", delta), ("window", window)) if v is not None}
        given.update(options)  # an option given as None (ace_dims=None: all) counts
        asked = asdict(dataclasses.replace(cfg, **given))  # checked, normalised as calibration
        clash = {k: given[k] for k in given if asked[k] != getattr(cfg, k)}
        if clash:
            was = ", ".join(f"{k}={getattr(cfg, k)!r}" for k in clash)
            raise ValueError(
                f"this monitor was calibrated with {was}; {clash} would need a new "
                "calibration: pass calibration rollouts instead of the monitor (only rule "
                "may change on a calibrated monitor)"
            )
        if rule is not None and rule != cfg.rule:  # a copy: the given monitor keeps its rule
            check_joint_rule(cfg.threshold, check_rule(rule))
            new_cfg = dataclasses.replace(cfg, rule=rule)
            calibration = dataclasses.replace(calibration, config=new_cfg)
        return MonitoredPolicy(policy, calibration)
    cfg = MonitorConfig(
        delta=0.1 if delta is None else delta,
        window=10 if window is None else window,
        rule=rule or "and",
        **options,
    )
    return MonitoredPolicy(policy, calibrate(policy, calibration, cfg))


def load_monitor(path: str | Path, policy: Any) -> MonitoredPolicy:
    """Load ``<run_dir>/monitor.pt`` (or any saved monitor) around ``policy``.

    :raises ValueError: if the monitor was calibrated for a policy with another observation,
        embedding or action dim (files saved before these sizes were stored are not checked)."""
    return MonitoredPolicy(policy, Monitor.load(path))
