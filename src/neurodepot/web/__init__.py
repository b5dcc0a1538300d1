"""Server-rendered Jinja2 pages (to come)."""
