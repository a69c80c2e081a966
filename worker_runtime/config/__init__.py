"""What the builder may read: the settings catalogue, settings parsing, releases, the engine's argv/env,
the per-release flag table, the route table and what a checkpoint folder must hold. Imports nothing from
``engine`` or ``serve``."""
