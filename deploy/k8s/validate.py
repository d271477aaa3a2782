"""Validate rendered Kubernetes manifests (a YAML stream on stdin, or a file).

`kubectl kustomize deploy/k8s/overlays/example | python deploy/k8s/validate.py` (make lint).

Built-in kinds go through kubernetes-validate (strict: an unknown field is an error) for the
Kubernetes version given with -k (default 1.32). kubernetes-validate knows no custom resources,
so the KEDA objects are validated against the openAPIV3Schema of the KEDA CRDs kept in
deploy/k8s/schemas/ (from kedacore/keda, config/crd/bases; see the README there), made strict
the way the API server's field validation is: an object that lists its properties and neither
preserves unknown fields nor declares additionalProperties admits no other field. A kind with
no schema at all is an error, never a silent pass. Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kv

SCHEMAS = Path(__file__).resolve().parent / "schemas"


def strict(schema: Any) -> Any:
    """The schema with additionalProperties: false wherever Kubernetes would prune a field."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict JSON schema of every served version of every stored CRD."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    schema["properties"]["metadata"] = {"type": "object"}
                    found[(f"{group}/{version['name']}", kind)] = schema
    return found


def check(doc: dict[str, Any], version: str, crds: dict[tuple[str, str], Any]) -> list[str]:
    """Error messages for one object (empty: valid)."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in crds:
        validator = jsonschema.Draft7Validator(crds[key])
        return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path))]
    try:
        kv.validate(doc, version, strict=True)
    except kv.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path)) or '<root>'}: {exc.message}"]
    except kv.SchemaNotFoundError as exc:
        return [f"no schema ({exc.message}): add its CRD to deploy/k8s/schemas/"]
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--kubernetes-version", default="1.32.0")
    parser.add_argument("file", nargs="?", default="-", help="YAML stream (default: stdin)")
    args = parser.parse_args()
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    if not docs:
        print("k8s: no objects to validate", file=sys.stderr)
        return 1
    crds = crd_schemas()
    failed = 0
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for error in check(doc, args.kubernetes_version, crds):
            print(f"k8s: {name}: {error}", file=sys.stderr)
            failed += 1
    print(f"k8s: {len(docs)} objects, {failed} errors (Kubernetes {args.kubernetes_version}, "
          "KEDA CRDs from deploy/k8s/schemas/)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
