"""Prometheus rule files written by PyYAML, in the layout of the hand-written alert-rules.yml.

Sequences are indented under their key, rule groups are one blank line apart, and no line is
folded however long. Every string value is single-quoted (PromQL is full of double quotes,
never of single ones) or, when it spans lines, a literal block (`|-`); keys and group names are
plain.
"""

from __future__ import annotations

from typing import Any

import yaml


class RuleDumper(yaml.SafeDumper):
    """SafeDumper with the rule files' layout."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # PyYAML writes a block sequence's `- ` at its key's column; the rule files indent it.
        super().increase_indent(flow, False)

    def expect_block_sequence_item(self, first: bool = False) -> None:
        # A blank line before every rule group but the first (the top sequence: `groups:`).
        if not first and not isinstance(self.event, yaml.SequenceEndEvent) and len(self.indents) == 2:
            if self.column:
                self.write_line_break()  # end the last group's last line
            self.write_line_break()
        super().expect_block_sequence_item(first)


def _string(dumper: RuleDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else "'")


def _mapping(dumper: RuleDumper, value: dict[str, Any]) -> yaml.MappingNode:
    node = dumper.represent_dict(value)
    for key, item in node.value:
        key.style = None
        if key.value == "name":
            item.style = None
    return node


RuleDumper.add_representer(str, _string)
RuleDumper.add_representer(dict, _mapping)


def dump_rules(groups: list[dict[str, Any]]) -> str:
    """A rule file's text: `groups:` and the groups, each {"name": ..., "rules": [...]}."""
    return yaml.dump({"groups": groups}, Dumper=RuleDumper, sort_keys=False, width=float("inf"), allow_unicode=True)
