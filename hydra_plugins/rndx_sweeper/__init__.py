"""rndx's Hydra sweeper: Hydra only loads sweeper classes from the ``hydra_plugins`` package."""
