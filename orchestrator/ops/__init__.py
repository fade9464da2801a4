"""Around the runs: retention, the ETA estimator, metrics, notifications (webhooks, mail, missed-run checks)."""
