"""Command-line interface (click). Nothing imports this package."""
