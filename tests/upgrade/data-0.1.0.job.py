import os
import sys

print("PROGRESS 10 Connecting to GitHub...", flush=True)
print("PROGRESS 50 Fetching GitHub PRs... (8/15 repos)", flush=True)
print("hello from the job")
if os.environ.get("SNAPSHOT_REASON") == "fail":
    print("GitHub answered 502", file=sys.stderr)
    sys.exit(1)
print("PROGRESS 100 Snapshot written", flush=True)
