"""Per-sample state, its update rules and the questions asked of it: numpy, and numba for the ingest."""
