"""The ground floor: the one settings class and the names every layer shares.

Imports nothing of the project, so every package may import it (see ``docs/architecture.md``).
"""

from settings.config import DEV_WEBHOOK_SECRET, Settings, export_s3_environment, get_settings

__all__ = ["DEV_WEBHOOK_SECRET", "Settings", "export_s3_environment", "get_settings"]
