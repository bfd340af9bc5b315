"""Configuration and process wiring."""
