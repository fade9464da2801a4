"""What the service keeps on disk: the state file, the run history, the run logs and the one-service lock."""
