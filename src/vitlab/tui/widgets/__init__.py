"""Widgets of the vitlab TUI."""
