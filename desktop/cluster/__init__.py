"""Bulk classification on a Ray cluster (optional extra `cluster`); the station app never
imports this package."""
