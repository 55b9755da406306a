"""Workflows decide; activities do the I/O. Modules here import only the standard library, temporalio, the
payload models and the pure rules, so that they stay deterministic."""
