#!/usr/bin/env python3
"""Writes crates/sandbox/src/api/protobuf/schema.rs: the field tables the sandbox API emulator uses to
read Kubernetes protobuf request bodies (what kubectl's typed clients send).

Input: upstream's generated.proto files of k8s.io/api and k8s.io/apimachinery (Apache-2.0),
e.g. checkouts of github.com/kubernetes/api and github.com/kubernetes/apimachinery:

    scripts/generate-protobuf-schema.py API_CHECKOUT APIMACHINERY_CHECKOUT > crates/sandbox/src/api/protobuf/schema.rs

Only the messages reachable from the kinds the emulator serves are written. Kubernetes' protos
name every field by its JSON name, have no enums, oneofs or nested messages, and key every map by
string, which keeps the parsing below small.
"""
import re
import subprocess
import sys
from pathlib import Path

FILES = [
    ("api", "core/v1/generated.proto"),
    ("api", "networking/v1/generated.proto"),
    ("api", "coordination/v1/generated.proto"),
    ("api", "authorization/v1/generated.proto"),
    ("api", "authentication/v1/generated.proto"),
    ("api", "events/v1/generated.proto"),
    ("apimachinery", "pkg/apis/meta/v1/generated.proto"),
    ("apimachinery", "pkg/runtime/generated.proto"),
    ("apimachinery", "pkg/util/intstr/generated.proto"),
    ("apimachinery", "pkg/api/resource/generated.proto"),
]

# The kinds whose bodies the emulator accepts (and the DeleteOptions of deletes).
ROOTS = [
    "k8s.io.api.core.v1.Namespace",
    "k8s.io.api.core.v1.Pod",
    "k8s.io.api.core.v1.Service",
    "k8s.io.api.core.v1.Event",
    "k8s.io.api.networking.v1.NetworkPolicy",
    "k8s.io.api.networking.v1.Ingress",
    "k8s.io.api.coordination.v1.Lease",
    "k8s.io.api.authorization.v1.SelfSubjectAccessReview",
    "k8s.io.api.authorization.v1.SelfSubjectRulesReview",
    "k8s.io.api.authentication.v1.SelfSubjectReview",
    "k8s.io.api.events.v1.Event",
    "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "k8s.io.apimachinery.pkg.runtime.Unknown",
]

# Messages with a JSON form of their own, decoded by hand (their fields are not followed).
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
    "k8s.io.apimachinery.pkg.api.resource.Quantity",
    "k8s.io.apimachinery.pkg.runtime.RawExtension",
    "k8s.io.api.authorization.v1.ExtraValue",
    "k8s.io.api.authentication.v1.ExtraValue",
}

SCALARS = {"string": "Str", "bytes": "Bytes", "int32": "I32", "int64": "I64", "bool": "Bool"}

FIELD = re.compile(
    r"^\s*(optional|repeated)?\s*(map<\s*string\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;"
)


def commit(checkout):
    try:
        return subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def git_show(checkout, path):
    """The file from the work tree, or from HEAD of a bare mirror."""
    p = Path(checkout) / path
    if p.is_file():
        return p.read_text()
    return subprocess.run(
        ["git", "-C", str(checkout), "show", f"HEAD:{path}"],
        capture_output=True, text=True, check=True,
    ).stdout


def parse(text):
    package = re.search(r"^package\s+([\w.]+)\s*;", text, re.M).group(1)
    messages = {}
    current = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0]
        m = re.match(r"^\s*message\s+(\w+)\s*\{", line)
        if m:
            current = f"{package}.{m.group(1)}"
            messages[current] = []
            if line.strip().endswith("}"):
                current = None
            continue
        if current is None:
            continue
        if line.strip() == "}":
            current = None
            continue
        f = FIELD.match(line)
        if f:
            label, ty, map_value, name, tag = f.groups()
            messages[current].append((int(tag), name, ty, map_value, label == "repeated"))
    return package, messages


def resolve(ty, package, known):
    if ty in SCALARS:
        return ty
    if ty.startswith("."):
        return ty[1:]
    candidate = f"{package}.{ty}"
    if candidate in known:
        return candidate
    raise SystemExit(f"unknown type {ty} in {package}")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    checkouts = {"api": sys.argv[1], "apimachinery": sys.argv[2]}
    parsed = [parse(git_show(checkouts[repo], path)) for repo, path in FILES]
    known = {name for _, messages in parsed for name in messages}
    fields = {}
    for package, messages in parsed:
        for name, entries in messages.items():
            fields[name] = [
                (tag, fname, resolve(map_value or ty, package, known), bool(map_value), repeated)
                for tag, fname, ty, map_value, repeated in entries
            ]
    reachable, todo = set(), list(ROOTS)
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable.add(name)
        if name in SPECIAL:
            continue
        for _, _, ty, _, _ in fields[name]:
            if ty not in SCALARS:
                todo.append(ty)

    def rust_ty(ty):
        return f"Ty::{SCALARS[ty]}" if ty in SCALARS else f'Ty::Msg("{ty}")'

    out = [
        "//! Field tables of the Kubernetes protobuf messages the emulator reads: generated by",
        "//! scripts/generate-protobuf-schema.py from upstream's generated.proto files",
        f"//! (k8s.io/api {commit(checkouts['api'])}, k8s.io/apimachinery {commit(checkouts['apimachinery'])}).",
        "//! Do not edit by hand.",
        "",
        "use super::field::{Field, Ty};",
        "",
        "const fn f(tag: u32, name: &'static str, ty: Ty, repeated: bool) -> Field {",
        "    Field { tag, name, ty, map: false, repeated }",
        "}",
        "",
        "const fn map(tag: u32, name: &'static str, ty: Ty) -> Field {",
        "    Field { tag, name, ty, map: true, repeated: true }",
        "}",
        "",
        "/// (message, fields), sorted by message name.",
        "#[rustfmt::skip]",
        "pub(super) static MESSAGES: &[(&str, &[Field])] = &[",
    ]
    for name in sorted(reachable):
        if name in SPECIAL:
            continue
        out.append(f'    ("{name}", &[')
        for tag, fname, ty, is_map, repeated in sorted(fields[name]):
            if is_map:
                out.append(f'        map({tag}, "{fname}", {rust_ty(ty)}),')
            else:
                out.append(f'        f({tag}, "{fname}", {rust_ty(ty)}, {str(repeated).lower()}),')
        out.append("    ]),")
    out.append("];")
    print("\n".join(out))


if __name__ == "__main__":
    main()
