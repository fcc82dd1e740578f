"""vitlab's Textual TUI: set up runs, watch them train, compare them. Imports no torch at module level."""
