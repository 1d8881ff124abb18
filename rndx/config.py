"""Hydra/OmegaConf glue: custom resolvers and config helpers shared by the entry points."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def _first_not_none(*values: Any) -> Any:
    """Return the first value that is not None (oc.select treats an explicit null as a value)."""
    return next((v for v in values if v is not None), None)


def register_resolvers() -> None:
    """Register rndx's resolvers; safe to call more than once."""
    if not OmegaConf.has_resolver("rndx.first"):
        OmegaConf.register_new_resolver("rndx.first", _first_not_none)


def to_dict(node: DictConfig | None) -> dict[str, Any]:
    """Return a resolved plain-dict copy of a config node (None -> {})."""
    if node is None:
        return {}
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


register_resolvers()
