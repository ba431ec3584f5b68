"""Deployment tooling (never deployed): the merge template and stage configuration."""
