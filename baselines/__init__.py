"""Baseline training methods, one module each, registered with ``lmt.methods.register_method``.

Every module in this package is imported when the method registry is first used, so adding a
baseline is one new file here plus one entry under ``methods:`` in a config (README, "Add a
baseline method").
"""
