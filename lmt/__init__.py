"""lmt-bench: Lipschitz-Margin Training, certified radii and attack upper bounds.

The library computes; the Snakemake workflow in ``workflow/`` only orchestrates it.
"""

__version__ = "0.1.0"
