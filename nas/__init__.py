"""nas: search spaces, searchers and accuracy estimators for hardware-aware NAS."""
