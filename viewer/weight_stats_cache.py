"""Weight statistics per model file, so reopening a model skips the statistics pass (Qt-free)."""

from __future__ import annotations

import os


class WeightStatsCache:
    """{(ModelSpec, weights file mtime): statistics}; a rewritten weights file misses."""

    def __init__(self):
        self._stats: dict = {}

    @staticmethod
    def key(spec):
        """(spec, mtime of its weights file), or None when there is no readable file."""
        try:
            return spec, os.path.getmtime(spec.weights)
        except (OSError, TypeError, AttributeError):
            return None

    def get(self, spec):
        """The statistics cached for ``spec`` (None: unknown, or no spec)."""
        key = self.key(spec) if spec is not None else None
        return self._stats.get(key) if key is not None else None

    def update(self, spec, stats):
        """Remember ``stats`` of ``spec`` when given; return the statistics to show for it:
        ``stats``, else the cached ones, else None."""
        if stats is not None:
            key = self.key(spec)
            if key is not None:
                self._stats[key] = stats
            return stats
        return self.get(spec)
