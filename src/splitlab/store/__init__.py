"""The app store: SQLAlchemy tables, migrations and keyword-only repository functions."""
