"""Recova: collection case management."""
