"""Benchmarks of hwprof itself. Run all with ``python -m benchmarks`` (or ``make bench``)."""
