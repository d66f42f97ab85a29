"""Message sources: one Protocol (`base.Source`), one module per broker, and an in-memory one for tests."""
