"""The Textual dashboard: reads the store, reacts to its messages."""
