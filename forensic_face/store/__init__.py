"""Case folders, the gallery database and the analysis services (no Qt)."""
