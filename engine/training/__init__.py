"""Training: the loop, callbacks, device choice and seeding."""
