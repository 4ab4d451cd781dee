"""hwprof: hardware-aware neural architecture search.

Profile devices, fit latency predictors, and search networks that are both
accurate and fast on a target chip.
"""

__version__ = "0.1.0"
