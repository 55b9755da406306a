"""The pydantic models that workflows, updates and activities take and return: one model in, one out.

Fields may be added with defaults; never renamed or removed, since recorded histories hold them.
"""
