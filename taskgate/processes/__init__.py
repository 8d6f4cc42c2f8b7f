"""Entry points of the processes `taskgate serve --workers N` starts: its workers and the local model process."""
