"""Authentication and the Identity every request carries."""
