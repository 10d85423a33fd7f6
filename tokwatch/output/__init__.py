"""What tokwatch hands to the outside world: export rows, watch events, report tables, the status line."""
