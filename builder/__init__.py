"""Builder: variant files -> validated, resolved variants -> rendered worker build directories."""

__version__ = "0.1.0"
