"""Reading manifests for `apply -f` / `delete -f`: files, folders, stdin; YAML or JSON."""
from __future__ import annotations

import json
import os
import sys

from nanokube.cli.errors import CLIError

EXTENSIONS = (".json", ".yaml", ".yml")


def parse_documents(text: str, source: str) -> list[dict]:
    """Every non-empty document of a multi-document YAML (or JSON) text; kind List is expanded."""
    import yaml
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise CLIError(f"error parsing {source}: error converting YAML to JSON: {e}") from e
    objects: list[dict] = []
    for doc in docs:
        if doc is None or doc == {}:
            continue
        if not isinstance(doc, dict):
            raise CLIError(f'error validating "{source}": error validating data: '
                           f"invalid object to validate")
        if not doc.get("kind"):
            raise CLIError(f"unable to decode \"{source}\": Object 'Kind' is missing in "
                           f"'{json.dumps(doc, separators=(',', ':'))}'")
        if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
            objects += [item for item in doc["items"] if item]
        else:
            objects.append(doc)
    return objects


def manifest_files(path: str) -> list[str]:
    if os.path.isdir(path):
        return sorted(os.path.join(path, n) for n in os.listdir(path)
                      if n.endswith(EXTENSIONS) and os.path.isfile(os.path.join(path, n)))
    if not os.path.exists(path):
        raise CLIError(f'the path "{path}" does not exist')
    return [path]


def load_manifests(paths: list[str]) -> list[tuple[str, dict]]:
    """(source, object) pairs; the source is what kubectl names in its messages."""
    out: list[tuple[str, dict]] = []
    for path in paths:
        if path == "-":
            out += [("STDIN", o) for o in parse_documents(sys.stdin.read(), "STDIN")]
            continue
        for name in manifest_files(path):
            with open(name) as f:
                out += [(name, o) for o in parse_documents(f.read(), name)]
    return out
