"""The licence rules: pure functions of their inputs, with no Temporal, SQLAlchemy or FastAPI.

Anything that needs the current time takes `now` as an argument.
"""
