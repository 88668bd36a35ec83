"""``malipo`` sub-commands that belong to shared: one module per group."""
