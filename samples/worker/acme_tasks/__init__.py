"""An example of processors in a user's own package (README: Writing a processor)."""
