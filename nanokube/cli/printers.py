"""Output as kubectl prints it: tables through a tabwriter, YAML/JSON as Go's encoders write them."""
from __future__ import annotations

import json
from typing import Any


class TabWriter:
    """Go's text/tabwriter as kubectl configures it for `get` (liggitt/tabwriter: minwidth 6,
    padding 3, RememberWidths). A row is a list of cells; every cell but the last is padded to
    its column's width; widths are remembered across `format` calls and only grow (watch)."""

    def __init__(self, padding: int = 3, minwidth: int = 6, remember_widths: bool = True):
        self.padding = padding
        self.minwidth = minwidth
        self.remember_widths = remember_widths
        self.widths: list[int] = []

    def format(self, rows: list[list[str]]) -> str:
        widths = list(self.widths) if self.remember_widths else []
        for row in rows:
            for i, cell in enumerate(row[:-1]):
                w = max(len(cell) + self.padding, self.minwidth)
                if i >= len(widths):
                    widths.append(w)
                elif w > widths[i]:
                    widths[i] = w
        if self.remember_widths:
            self.widths = widths
        lines = []
        for row in rows:
            cells = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])]
            lines.append("".join(cells) + (row[-1] if row else "") + "\n")
        return "".join(lines)


def cell_text(value: Any) -> str:
    """A Table cell as kubectl's table printer prints it (fmt.Sprint, strings cut at a newline)."""
    if value is None:
        return ""
    if isinstance(value, str):
        for i, ch in enumerate(value):
            if ch in "\f\n\r":
                return value[:i] + "..."
        return value
    return go_sprint(value)


def go_sprint(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(v)}" for k, v in sorted(value.items())) + "]"
    if value is None:
        return "<nil>"
    return str(value)


def table_rows(table: dict, wide: bool = False, with_namespace: bool = False,
               headers: bool = True, columns: list[dict] | None = None) -> list[list[str]]:
    """Header and rows of a metav1.Table, as `kubectl get` lays them out."""
    columns = columns if columns is not None else table.get("columnDefinitions") or []
    shown = [i for i, c in enumerate(columns) if wide or not c.get("priority")]
    out: list[list[str]] = []
    if headers:
        head = ["NAMESPACE"] if with_namespace else []
        out.append(head + [columns[i]["name"].upper() for i in shown])
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        line = []
        if with_namespace:
            meta = (row.get("object") or {}).get("metadata") or {}
            line.append(meta.get("namespace", ""))
        line += [cell_text(cells[i]) if i < len(cells) else "" for i in shown]
        out.append(line)
    return out


def kind_string(kind: str, group: str) -> str:
    """`service`, `deployment.apps`: how kubectl names a kind in `kind/name` and messages."""
    return f"{kind.lower()}.{group}" if group else kind.lower()


def api_group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


# ---- JSON and YAML --------------------------------------------------------------------------

def _go_json_escape(text: str) -> str:
    """encoding/json escapes <, >, & and the JS line separators."""
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def go_json(obj: Any) -> str:
    """json.Marshal of an unstructured object: compact, keys sorted."""
    return _go_json_escape(json.dumps(obj, separators=(",", ":"), sort_keys=True,
                                      ensure_ascii=False))


def to_json(obj: Any) -> str:
    """kubectl -o json: json.MarshalIndent with 4 spaces, then a newline."""
    return _go_json_escape(json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False)) + "\n"


def to_yaml(obj: Any) -> str:
    """kubectl -o yaml (sigs.k8s.io/yaml on go-yaml v2): sorted keys, unindented sequences,
    no line wrapping, double quotes where quoting is needed, `|` blocks for multi-line text."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def choose_scalar_style(self):
            style = super().choose_scalar_style()
            return '"' if style == "'" else style

    def str_representer(dumper, data):
        style = "|" if "\n" in data and not _has_trailing_space(data) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, str_representer)
    return yaml.dump(obj, Dumper=Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=float("inf"))


def _has_trailing_space(text: str) -> bool:
    return any(line != line.rstrip(" \t") for line in text.split("\n"))


def strip_managed_fields(obj: dict) -> dict:
    """kubectl get -o yaml/json hides metadata.managedFields (--show-managed-fields=false)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def go_tabwriter(text: str, minwidth: int = 0, padding: int = 2) -> str:
    """text/tabwriter with flags 0, as `kubectl describe` uses it (minwidth 0, padding 2).
    Cells are tab-terminated; a column's width holds over a block of consecutive lines that
    have a cell in that column, so a line without a tab starts new blocks."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def write_lines(widths: list[int], line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts = [c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(cells)]
            out.append("".join(parts))

    def fmt(widths: list[int], line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(widths, line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            fmt(widths + [width], line0, this)
            line0 = this
        write_lines(widths, line0, line1)

    fmt([], 0, len(lines))
    return "\n".join(out)
