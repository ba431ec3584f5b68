"""Client contracts: each is a view of the canonical Task, never a second store."""
