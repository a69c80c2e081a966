"""FastDeploy worker runtime for RunPod serverless: settings, engine supervisor, handler, local endpoint.

Importing the package imports nothing heavy (the builder reads ``worker_runtime.config.settings``).
"""

__version__ = "0.1.0"
