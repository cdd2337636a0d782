"""Models of daily snapshots and KPI aggregates (issue 6)."""
