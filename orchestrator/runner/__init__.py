"""The one consumer of the trigger queue: coalescing, the run lifecycle, supervision and crash recovery."""
