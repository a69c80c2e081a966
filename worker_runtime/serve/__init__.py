"""Serving jobs: normalisation, the handler and its relay, errors, replies, the two HTTP front doors."""
