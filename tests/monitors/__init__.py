"""Helpers shared by the monitor tests."""

from __future__ import annotations

from typing import Any


def tiny_chunk_policy(observation_space: Any, action_space: Any):
    """An untrained, seconds-cheap chunk policy (H 4, k 2, 8-d embedding, 2 flow steps)."""
    from rndx.agents.chunk_flow import ChunkFlowPolicy

    return ChunkFlowPolicy(
        observation_space,
        action_space,
        horizon=4,
        execute=2,
        embedding_dim=8,
        encoder_hidden=(16,),
        velocity_hidden=(16,),
        flow_steps=2,
    )
