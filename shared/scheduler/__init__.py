"""Cloud Scheduler jobs from scheduler.yaml: validated, diffed, applied."""
