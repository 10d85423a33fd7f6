"""Views over recorded usage: periods, sessions, 5-hour blocks, budgets, one session's status."""
