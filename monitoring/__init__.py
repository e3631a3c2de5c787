"""Drift statistics, Prometheus metrics and the dashboards and alert rules that read them."""
