"""The HTTP API (v1): JSON over /api/v1. Routes read from the database and ask workflows to decide."""
