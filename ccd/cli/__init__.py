"""ccd's command line (click + rich)."""
