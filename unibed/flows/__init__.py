"""Prefect flows that run unibed's stages (fetch, build, validate, train, evaluate)."""
