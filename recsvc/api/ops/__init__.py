"""Operations (no key): liveness and readiness probes, Prometheus metrics."""
