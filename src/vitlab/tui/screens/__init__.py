"""Modal screens: confirmations, the preset picker, save and export dialogs."""
