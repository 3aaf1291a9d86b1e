"""The 3 a.m. tasks, agentless over SSH (or a local Context): reset (reset.py),
.env backup and restore (env.py), cleanup of old recordings (clean.py),
system updates (system_update.py).

Nothing is deleted or reset without a backup first; `.env` contents are
never printed (only sizes, sha256 and key names). They reuse the pipeline's
lock file (flock), dependency rules, readiness poll, state and history files.
"""
from .clean import CleanResult, clean, clean_cmd
from .common import app_file, record_run, stamp
from .env import (EnvBackup, backup_env, backup_env_cmd, env_backup_dir, env_diff, fetch_private, list_env_cmd,
                  parse_env_list, restore_env)
from .reset import (ResetPlan, ResetResult, reset, reset_cmd, reset_plan, reset_plan_cmd, rule_cmd,
                    save_local_state_cmd, stop_holder)
from .system_update import DETECT, UpdateReport, check_updates_cmd, parse_check, system_update, update_cmd

__all__ = [
    "CleanResult", "clean", "clean_cmd", "app_file", "record_run", "stamp", "EnvBackup", "backup_env",
    "backup_env_cmd", "env_backup_dir", "env_diff", "fetch_private", "list_env_cmd", "parse_env_list", "restore_env",
    "ResetPlan", "ResetResult", "reset", "reset_cmd", "reset_plan", "reset_plan_cmd", "rule_cmd",
    "save_local_state_cmd", "stop_holder", "DETECT", "UpdateReport", "check_updates_cmd", "parse_check",
    "system_update", "update_cmd",
]
