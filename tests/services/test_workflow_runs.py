"""aura.services.workflow_runs on its own: the workflows' settings come from the configuration."""

from __future__ import annotations

from aura.config import Settings
from aura.services.workflow_runs import audit_settings, struggle_settings


def test_workflow_settings_are_read_from_the_configuration(tmp_path):
    settings = Settings.from_env(
        {"AURA_INSTANCE_PATH": str(tmp_path)},
        audit_max_files=7,
        audit_max_file_bytes=1000,
        max_content_length=5000,
        audit_max_function_lines=9,
        audit_max_cpu_seconds=0.25,
        struggle_score_threshold=0.75,
    )
    audit = audit_settings(settings)
    assert (audit.max_files, audit.max_file_bytes, audit.max_function_lines) == (7, 1000, 9)
    assert audit.max_total_bytes == 5000  # the whole body never exceeds MAX_CONTENT_LENGTH
    assert audit.max_cpu_seconds == 0.25
    assert struggle_settings(settings).score_threshold == 0.75
