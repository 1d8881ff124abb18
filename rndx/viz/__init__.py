"""Pictures of what rndx does: the monitor strip for videos, the novelty map."""
