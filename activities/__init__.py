"""Activities do the I/O (database, SMTP). Each is safe to retry: it finds its earlier work by a business key."""
