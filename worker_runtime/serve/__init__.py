"""Serving jobs: normalisation, the handler and its relay, errors, HTTP answers, the two HTTP front doors."""
