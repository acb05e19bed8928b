"""Channel counts of a network scaled by its width multiplier."""


def scaled_channels(channels: int, width: float) -> int:
    """``channels`` × ``width``, rounded, at least 1: fractional widths (¼) make small test networks."""
    return max(1, round(channels * width))
