"""Projections: read models built from the engine's domain events, each writing its rows and its
checkpoint (log position) in one transaction. Rebuildable from the log."""
