"""landscape: measure, on real data, the loss-landscape geometry that convergence theory relies on.

The library face, for your own model and data (see README, "Use as a library")::

    from landscape import Objective, HessianOperator, top_eigenpairs, most_negative_eigenpair
    F = Objective(model, loader, loss=torch.nn.CrossEntropyLoss())   # F(θ) over the loader's examples
    value, grad = F.value_and_grad()                                 # float64, exact over the set

Names are imported on first use, so ``import landscape`` (and the CLI) stays fast.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "Objective": "objective", "exact_bn_statistics": "objective", "per_example_loss": "objective",
    "HessianOperator": "curvature", "Eigenpair": "curvature", "TraceEstimate": "curvature",
    "extreme_eigenpairs": "curvature", "top_eigenpairs": "curvature", "most_negative_eigenpair": "curvature",
    "hutchinson_trace": "curvature", "spectrum_ends": "curvature", "SpectrumEnds": "curvature",
    "lanczos_quadrature": "density", "SpectralQuadrature": "density", "spectral_density": "density",
    "negative_mass": "density", "outlier_count": "density",
    "Direction": "directions", "UndefinedDirection": "directions", "gradient_direction": "directions",
    "gaussian_direction": "directions", "filter_normalized_direction": "directions",
    "eigenvector_direction": "directions", "orthogonalize": "directions",
    "gradient_dominance": "measure", "semi_smoothness_probe": "measure", "default_steps": "measure",
    "fit_envelope": "measure", "surface": "measure", "surface_summary": "measure", "interpolation": "measure",
    "monotonicity": "measure", "second_order_test": "measure", "plane_function": "measure",
    "max_decrease_along": "measure",
    "build_model": "models", "LandscapeError": "errors",
    "load_synthetic": "data", "separated_points": "synthetic", "min_pairwise_distance": "synthetic",
    "separation_bound": "synthetic",
    "jacobian": "theory", "ntk": "theory", "ntk_drift": "theory", "depth_scaling_fit": "theory",
    "DepthFit": "theory", "LogFit": "theory", "dominance_against_lemma": "theory", "DominanceComparison": "theory",
    "star_convexity": "trajectory", "StarConvexity": "trajectory", "pl_star": "trajectory", "PLStar": "trajectory",
    "star_convexity_of": "trajectory", "pl_star_of": "trajectory",
    "gradient_alignment": "trajectory", "GradientAlignment": "trajectory", "lanczos_top": "trajectory",
    "SharpnessTracker": "trajectory", "SharpnessRecord": "trajectory",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")


def __dir__():
    return __all__
