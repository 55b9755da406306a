"""Email: what each message says, and delivering it over SMTP."""
