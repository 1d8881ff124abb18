"""rndx: random-network novelty for exploration and out-of-distribution alarms."""

__version__ = "0.1.0"

from rndx import envs as envs  # noqa: E402  (registers the rndx/... Gymnasium ids)

# imported on first use (torch-heavy): rndx.agents, rndx.monitors, and rndx.monitor, a module
# that is callable (rndx.monitor(policy, ...); see its docstring)
_LAZY = ("agents", "monitor", "monitors")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"rndx.{name}")
    raise AttributeError(f"module 'rndx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
