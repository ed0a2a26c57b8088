"""The Mews Connector API: models, errors, paging and windows (pure), the client and the shared
rate limiter (I/O)."""
