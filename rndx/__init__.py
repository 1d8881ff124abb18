"""rndx: random-network novelty for exploration and out-of-distribution alarms."""

__version__ = "0.1.0"

from rndx import envs as envs  # noqa: E402  (registers the rndx/... Gymnasium ids)
