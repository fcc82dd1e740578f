"""The three views of the app: Setup, Live and Results (tabs of the main screen)."""
