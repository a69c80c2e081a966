"""Variant files: typed model, loading (extends), validation, resolution against the compatibility data."""
