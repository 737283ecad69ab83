"""Batch jobs: read a jobs file, validate every line, run the jobs, stream results to disk.

Engine-agnostic: a line's `kind` names a `kinds.KINDS` entry, its other fields are that kind's
request contract. Every line is validated before anything runs (jobsfile.py). Each finished job is
saved at once (atomic files plus sidecar) and then recorded as one line of `manifest.jsonl`,
appended and fsynced (manifest.py), so a killed run loses at most the jobs that were in flight; a
re-run skips every request hash the manifest records as done (runner.py). Nothing here prints: the
caller passes a `Reporter`.
"""

from muse_cli.batch.jobsfile import (
    Job, LineError, Plan, detect_format, job_hash, kind_names, parse_rows, plan, prompt_rows, read_text,
)
from muse_cli.batch.manifest import JOURNAL, LOCK, MANIFEST, FolderBusy, Manifest, folder_lock
from muse_cli.batch.runner import COMMAND, Reporter, Summary, pending, run

__all__ = [
    "COMMAND", "JOURNAL", "LOCK", "MANIFEST", "FolderBusy", "Job", "LineError", "Manifest", "Plan", "Reporter",
    "Summary", "detect_format", "folder_lock", "job_hash", "kind_names", "parse_rows", "pending", "plan",
    "prompt_rows", "read_text", "run",
]
