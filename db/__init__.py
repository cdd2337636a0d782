"""Database layer: typed models, the engine and session factory, migrations."""
