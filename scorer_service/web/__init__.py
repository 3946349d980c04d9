"""The web layer: FastAPI routes, dashboard, export and Prometheus metrics over a store directory."""
