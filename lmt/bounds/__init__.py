"""Lipschitz upper bounds of layers and whole networks.

Bound your own model::

    from lmt.bounds import NetworkBound
    bound = NetworkBound(model, input_shape=(1, 28, 28)).certified_bound()
    print(bound.total, bound.layers)
"""

from lmt.bounds.graph import CertifiedBound, NetworkBound, TrainingBound
from lmt.bounds.registry import (
    EXACT,
    BoundContext,
    CertifySettings,
    Combiner,
    LayerBound,
    LayerCertificate,
    Rounding,
    elementwise_rounding,
    UnboundedOperationError,
    register_bound,
    register_combiner,
    registered_bounds,
    registered_combiners,
    register_constant_bound,
    register_fusion,
)

# Importing these modules registers the built-in bounds.
from lmt.bounds import arithmetic, batchnorm, combiners, conv, layers, lipschitz, pooling  # noqa: E402,F401
from lmt.bounds.comparison import BoundComparison, compare_bounds, comparison_frame  # noqa: E402

__all__ = [
    "EXACT",
    "Rounding",
    "elementwise_rounding",
    "BoundComparison",
    "BoundContext",
    "CertifiedBound",
    "CertifySettings",
    "Combiner",
    "LayerBound",
    "LayerCertificate",
    "NetworkBound",
    "TrainingBound",
    "UnboundedOperationError",
    "compare_bounds",
    "comparison_frame",
    "register_bound",
    "register_combiner",
    "register_constant_bound",
    "register_fusion",
    "registered_bounds",
    "registered_combiners",
]
