"""The server-rendered dashboard: Jinja2 templates over snapshots, never statistics."""
