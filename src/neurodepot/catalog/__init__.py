"""The hierarchy project → subject → session → scan, and the resources holding files."""
