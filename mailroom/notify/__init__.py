"""Notifications: subscriptions to a mailbox's changes, read from the change journal."""
