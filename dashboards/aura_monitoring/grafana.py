"""Grafana JSON: a Dashboard in Grafana's export format ("Export for sharing externally").

The files are uploaded through Grafana's Dashboards -> Import (their `__inputs` ask for the
Prometheus datasource) and provisioned by k8s/monitoring (a datasource variable of the same
name, DS_PROMETHEUS, stands in for the import input there, defaulting to the default
Prometheus datasource).
"""

from __future__ import annotations

import json
from typing import Any

from .panels import Dashboard, Panel, Target

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
PANEL_WIDTH, PANEL_HEIGHT, GRID_WIDTH = 12, 8, 24


def _target_json(target: Target, ref_id: str, instant: bool) -> dict[str, Any]:
    out = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": target.expr,
        "instant": instant,
        "legendFormat": target.legend or "__auto",
        "range": not instant,
        "refId": ref_id,
    }
    if target.exemplar:
        out["exemplar"] = True  # Grafana draws each exemplar as a point: hover it for its trace_id
    return out


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any]
    if panel.kind == "timeseries":
        defaults = {
            "color": {"mode": "palette-classic"},
            "custom": {
                "drawStyle": "line",
                "fillOpacity": 10,
                "lineWidth": 1,
                "showPoints": "never",
                "spanNulls": False,
            },
            "min": 0,
            "unit": panel.unit,
        }
        if panel.thresholds:
            # Drawn as dashed lines; the base step (no value) draws nothing.
            defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
            defaults["thresholds"] = {
                "mode": "absolute",
                "steps": [{"color": "transparent", "value": None}]
                + [{"color": "red", "value": value} for value in panel.thresholds],
            }
        if panel.thresholds and min(panel.thresholds) <= 0:
            del defaults["min"]  # budgets go below 0 when overspent
    elif panel.kind == "stat":
        # A counter nobody has incremented yet has no series: show 0, not "No data".
        defaults = {
            "color": {"mode": "thresholds"},
            "decimals": 0,
            "noValue": "0",
            "thresholds": {"mode": "absolute", "steps": [{"color": "blue", "value": None}]},
            "unit": panel.unit,
        }
    else:
        defaults = {"color": {"mode": "palette-classic"}, "decimals": 0, "unit": panel.unit}
    overrides = [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "custom.hideFrom", "value": {"legend": False, "tooltip": False, "viz": True}}],
        }
        for name in panel.notes
    ]
    return {"defaults": defaults, "overrides": overrides}


def _options(panel: Panel) -> dict[str, Any]:
    reduce_last = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if panel.kind == "timeseries":
        # A panel with notes shows each series' last value in the legend: that is the note.
        calcs = ["lastNotNull"] if panel.notes else []
        return {
            "legend": {"calcs": calcs, "displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if panel.kind == "stat":
        return {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": reduce_last,
            "textMode": "auto",
        }
    return {
        "displayLabels": ["percent"],
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "values": ["value", "percent"]},
        "pieType": "pie",
        "reduceOptions": reduce_last,
        "tooltip": {"mode": "single", "sort": "none"},
    }


def _panel_json(panel: Panel, index: int) -> dict[str, Any]:
    per_row = GRID_WIDTH // PANEL_WIDTH
    # Stats and pie charts show one value per series: an instant query at the range's end.
    instant = panel.kind in ("stat", "piechart")
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": _field_config(panel),
        "gridPos": {
            "h": PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "x": (index % per_row) * PANEL_WIDTH,
            "y": (index // per_row) * PANEL_HEIGHT,
        },
        "id": index + 1,
        "options": _options(panel),
        "targets": [_target_json(t, chr(ord("A") + i), instant) for i, t in enumerate(panel.targets)],
        "title": panel.title,
        "type": panel.kind,
    }


# namespace, job and pod: multi-select with All, each listing what the one before allows.
# Aura's jobs are the ones whose targets export aura_build_info (always 1, one series per pod),
# so "All" jobs is every Aura job and nothing else. No custom allValue: All is the regex of the
# listed values, never `.*`.
VARIABLES = (
    ("namespace", "Namespace", "label_values(aura_build_info, namespace)"),
    ("job", "Job", 'label_values(aura_build_info{namespace=~"$namespace"}, job)'),
    ("pod", "Pod", 'label_values(aura_build_info{namespace=~"$namespace", job=~"$job"}, pod)'),
)


def _query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DATASOURCE,
        "definition": query,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard in Grafana's export format ("Export for sharing externally")."""
    kinds = sorted({p.kind for p in dashboard.panels})
    panel_names = {"piechart": "Pie chart", "stat": "Stat", "timeseries": "Time series"}
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes the Aura pods",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": kind, "name": panel_names[kind], "version": ""} for kind in kinds),
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": dashboard.description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": [_panel_json(p, i) for i, p in enumerate(dashboard.panels)],
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["aura"],
        "templating": {
            "list": [
                {
                    # Resolves ${DS_PROMETHEUS} when the file is provisioned rather than imported.
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "label": "Datasource",
                    "multi": False,
                    "name": "DS_PROMETHEUS",
                    "options": [],
                    "query": "prometheus",
                    "refresh": 1,
                    "regex": "",
                    "type": "datasource",
                },
                *(_query_variable(name, label, query) for name, label, query in VARIABLES),
            ]
        },
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": dashboard.title,
        "uid": dashboard.uid,
        "version": 1,
        "weekStart": "",
    }


def render_dashboard(dashboard: Dashboard) -> str:
    """The file's exact text: stable key order and indentation, so diffs stay reviewable."""
    return json.dumps(dashboard_json(dashboard), indent=2) + "\n"
