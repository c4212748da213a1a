"""Foolbox, imported once and quietly: every user in lmt-bench takes ``fb`` (and ``ep``) from here.

foolbox 3.3.4 imports ``gaussian_filter`` from ``scipy.ndimage.filters``, a namespace SciPy
deprecates (foolbox issue #702), so ``import foolbox`` emits a DeprecationWarning we can do
nothing about. Exactly that warning, raised by ``foolbox.attacks.blur`` at import, is ignored;
every other warning, from Foolbox or anywhere else, is shown as usual.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="Please (import|use) `gaussian_filter`", category=DeprecationWarning,
        module="foolbox.attacks.blur",
    )
    import eagerpy as ep
    import foolbox as fb

__all__ = ["ep", "fb"]
