"""Connections: one per Mews AccessToken (a property, or a portfolio of properties). The
`connections` table is the one source of truth for what is synced; every job works over the
active ones."""
