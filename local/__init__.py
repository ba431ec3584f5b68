"""Dev tooling for `make dev` and the tests. Never deployed; chalicelib never imports it."""
