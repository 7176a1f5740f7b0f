"""Research scripts: sweeps, A/B timings and diagnostics (not maintained)."""
