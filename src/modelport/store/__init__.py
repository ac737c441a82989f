"""Workspace state: metadata (SQLAlchemy) and content-addressed artifacts."""
