import os
import sys
import time

reason = os.environ.get("SNAPSHOT_REASON", "")
print("PROGRESS 10 Connecting to GitHub...", flush=True)
print("PROGRESS 50 Fetching GitHub PRs... (8/15 repos)", flush=True)
print(f"hello from the job ({reason})", flush=True)
if reason == "fail":
    print("GitHub answered 502", file=sys.stderr)
    sys.exit(1)
if reason == "wait for the gate":
    print("PROGRESS 60 Waiting for the gate file", flush=True)
    while not os.path.exists("gate"):
        time.sleep(0.1)
print("PROGRESS 100 Snapshot written", flush=True)
