"""Baseline training methods, one module each, registered with ``lmt.methods.register_method``.

Installed as the package ``lmt_bench_baselines`` and announced under the entry-point group
``lmt_bench.plugins`` (pyproject.toml), so :mod:`lmt` finds it without importing it by name.
Importing the package imports every module in it: adding a baseline is one new file here plus
one entry under ``methods:`` in a config (README, "Add a training method").
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
