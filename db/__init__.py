"""The database: models, sessions, the data functions that read and write them, and migrations."""
