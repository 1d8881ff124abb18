"""Runtime failure monitors: FIPER (Roemer et al., NeurIPS 2025) on any rndx policy.

Scores (RND-OE, ACE) and window sums in :mod:`~rndx.monitors.scores`; conformal thresholds in
:mod:`~rndx.monitors.calibration`; alarm rules in :mod:`~rndx.monitors.alarms`; metrics in
:mod:`~rndx.monitors.metrics`; the policy protocol and adapters in
:mod:`~rndx.monitors.policies`; the calibrated monitor, the monitored policy and its
Gymnasium wrapper in :mod:`~rndx.monitors.monitor`.
"""

from rndx.monitors.monitor import (
    Monitor,
    MonitorConfig,
    MonitoredPolicy,
    MonitorWrapper,
    calibrate,
    load_monitor,
    monitor,
    score_traces,
)
from rndx.monitors.policies import ChunkPolicyAdapter, SB3PolicyAdapter, as_monitorable

__all__ = [
    "ChunkPolicyAdapter",
    "Monitor",
    "MonitorConfig",
    "MonitorWrapper",
    "MonitoredPolicy",
    "SB3PolicyAdapter",
    "as_monitorable",
    "calibrate",
    "load_monitor",
    "monitor",
    "score_traces",
]
