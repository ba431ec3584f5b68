"""Client-side helpers for taskstatus users (not deployed with the service)."""
