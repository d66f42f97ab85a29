"""Backlog sources: one Protocol (`base.BacklogSource`) and one module per place a backlog can be read."""
