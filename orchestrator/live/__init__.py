"""Live progress: the progress document and its file, the watch on it, and the hub that hands the latest
status to every event stream."""
