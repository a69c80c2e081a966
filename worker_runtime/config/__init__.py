"""What the builder may read: the settings catalogue, settings parsing, releases, the engine's argv/env
and the per-release flag table. Imports nothing from ``engine`` or ``serve``."""
