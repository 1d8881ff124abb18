"""rndx: random-network novelty for exploration and out-of-distribution alarms."""

__version__ = "0.1.0"

from rndx import envs as envs  # noqa: E402  (registers the rndx/... Gymnasium ids)


def __getattr__(name: str):
    # rndx.monitor(policy, ...) without importing torch-heavy monitoring at `import rndx`;
    # the module rndx.monitor is callable (see its docstring).
    if name == "monitor":
        import importlib

        return importlib.import_module("rndx.monitor")
    raise AttributeError(f"module 'rndx' has no attribute {name!r}")
