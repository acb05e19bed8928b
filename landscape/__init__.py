"""landscape: measure, on real data, the loss-landscape geometry that convergence theory relies on.

The library face, for your own model and data (see README, "Use as a library")::

    from landscape import Objective, HessianOperator, top_eigenpairs, most_negative_eigenpair
    F = Objective(model, loader, loss=torch.nn.CrossEntropyLoss())   # F(θ) over the loader's examples
    value, grad = F.value_and_grad()                                 # float64, exact over the set

Your own network's checkpoints through the whole pipeline (repeats, stored results, figures, report)::

    landscape.analyze(make_net, "ckpts/", "folder:cifar10-jpeg", out="runs/mine",
                      settings={"subset": 512, "measurements": ["dominance", "curvature"]})

Names are imported on first use, so ``import landscape`` (and the CLI) stays fast.
"""

__version__ = "0.1.0"

# The public names by what they are for (module: names); each is imported from its module on first use.
GROUPS = {
    "objective and operators": {
        "objective": ["Objective", "exact_bn_statistics", "per_example_loss"],
        "curvature": ["HessianOperator", "hutchinson_trace", "TraceEstimate"]},
    "eigensolvers": {
        "curvature": ["spectrum_ends", "SpectrumEnds", "Eigenpair", "top_eigenpairs", "most_negative_eigenpair",
                      "extreme_eigenpairs", "bound_scope", "gradient_alignment", "gradient_alignment_at",
                      "GradientAlignment"],
        "density": ["lanczos_quadrature", "SpectralQuadrature", "spectral_density", "negative_mass", "outlier_count",
                    "Estimate", "OutlierCount"]},
    "measurements": {
        "measure": ["gradient_dominance", "Dominance", "semi_smoothness_probe", "adaptive_probe", "Probe", "ProbeFit",
                    "default_steps", "fit_envelope", "surface", "Surface", "surface_summary", "SurfaceSummary",
                    "GridBest", "interpolation", "Interpolation", "monotonicity", "Monotonicity", "second_order_test",
                    "SecondOrder", "plane_function", "max_decrease_along"],
        "trajectory": ["star_convexity", "StarConvexity", "star_convexity_of", "pl_star", "PLStar", "pl_star_of",
                       "SharpnessTracker", "SharpnessRecord"]},
    "directions": {
        "directions": ["Direction", "UndefinedDirection", "gradient_direction", "gaussian_direction",
                       "filter_normalized_direction", "eigenvector_direction", "orthogonalize"]},
    "data and models": {
        "data": ["load_synthetic"],
        "synthetic": ["separated_points", "min_pairwise_distance", "separation_bound"],
        "sources": ["tensor_dataset"],
        "models": ["build_model"],
        "checkpoint": ["ModelFactory"]},
    "theory and scaling": {
        "theory": ["jacobian", "ntk", "ntk_drift", "ntk_min_eigenvalue", "depth_scaling_fit", "DepthFit", "LogFit",
                   "dominance_against_lemma", "DominanceComparison", "activation_flips", "spectral_movement",
                   "LayerMovement"],
        "scaling": ["fit_slope", "Slope", "judge", "Prediction", "PREDICTIONS", "predictions", "theorem_lr"]},
    "pipeline": {
        "api": ["analyze"],
        "errors": ["LandscapeError"]},
}
_EXPORTS = {name: module for group in GROUPS.values() for module, names in group.items() for name in names}
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
