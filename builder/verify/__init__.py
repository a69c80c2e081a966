"""Run a variant's `.runpod/tests.json` jobs as the Hub does: against a local container (`local`) or a
deployed endpoint (`endpoint`), through the same job client (`jobs`) and report (`report`)."""
