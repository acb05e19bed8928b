"""landscape: measure, on real data, the loss-landscape geometry that convergence theory relies on."""

__version__ = "0.1.0"
