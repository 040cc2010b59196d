"""Storage on SQLAlchemy Core: tables generated from the registry, records, change events."""
