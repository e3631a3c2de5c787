"""Offline side: feature spec, training pipeline, evaluation, the versioned model registry."""
