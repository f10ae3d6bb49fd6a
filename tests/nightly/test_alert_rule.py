"""The README's Prometheus alert rule, checked with ``promtool test rules`` (Debian's
``prometheus`` package; skipped where it is not installed): silent after 20 hours,
firing at 27, and firing where the metric is absent altogether."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

RULES_TEST = """\
rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'movierec_nightly_last_success_timestamp_seconds{instance="cron1"}'
        values: '0x2000'
    alert_rule_test:
      - eval_time: 20h
        alertname: MovierecNightlyNoSuccess
        exp_alerts: []
      - eval_time: 27h
        alertname: MovierecNightlyNoSuccess
        exp_alerts:
          - exp_labels: {severity: page, instance: cron1}
            exp_annotations:
              summary: "rec-nightly has not published for 26 hours on cron1"
              description: "Last run: see rec-nightly status --home DIR, or DIR/report.html."
  - interval: 1m
    input_series:
      - series: 'up{job="node"}'
        values: '1x60'
    alert_rule_test:
      - eval_time: 30m
        alertname: MovierecNightlyNoSuccess
        exp_alerts:
          - exp_labels: {severity: page}
            exp_annotations:
              summary: "rec-nightly has not published for 26 hours"
              description: "Last run: see rec-nightly status --home DIR, or DIR/report.html."
"""


def test_the_readme_alert_rule_fires_after_26_hours_without_success(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    rules = re.search(r"```yaml\n(groups:.*?)```", README.read_text(), flags=re.S)
    assert rules, "the README's alert rule"
    (tmp_path / "rules.yml").write_text(rules.group(1))
    (tmp_path / "test.yml").write_text(RULES_TEST)
    proc = subprocess.run(
        ["promtool", "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
