"""Reading logs: discover files, tail them, hand lines to the agents, keep the record current."""
