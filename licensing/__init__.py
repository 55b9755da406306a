"""Application wiring: settings, the Temporal client, the CLI and the embedded dev stack."""
