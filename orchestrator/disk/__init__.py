"""Safe files: opening inside the data folder without following symlinks, owner-only modes, atomic JSON writes.
Used by the store, the progress file and the trigger folder."""
