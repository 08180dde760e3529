#!/usr/bin/env python3
"""Lays the function binaries out as `sam build` does: .aws-sam/build/template.yaml (the
template with each function's CodeUri set to its own folder) and .aws-sam/build/<LogicalId>/
bootstrap, from an existing cargo build (default target/debug). `sam local invoke` reads this
layout by default. Used by `make invoke` (unless SAM_BUILD=1) and by the sam_invoke test, so
neither pays for a second, cross-compiled build of every function.

    scripts/sam-layout.py [BINARIES_DIR]
"""
import os
import re
import shutil
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binaries = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "target", "debug")
out = os.path.join(root, ".aws-sam", "build")
template = open(os.path.join(root, "template.yaml")).read().splitlines()

# A function: "  Name:" then "    Type: AWS::Serverless::Function"; its binary is the
# Metadata's BuildProperties.Binary; CodeUri goes right after its "    Properties:".
functions = {}
lines = []
current = None
for i, line in enumerate(template):
    name = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
    if name:
        current = name.group(1) if i + 1 < len(template) and \
            template[i + 1].strip() == "Type: AWS::Serverless::Function" else None
    binary = re.match(r"^\s+Binary:\s*(\S+)\s*$", line)
    if current and binary:
        functions[current] = binary.group(1)
    lines.append(line)
    if current and line == "    Properties:":
        lines.append(f"      CodeUri: {current}")
missing = [b for b in functions.values() if not os.path.exists(os.path.join(binaries, b))]
if missing:
    sys.exit(f"sam-layout: {', '.join(missing)} not built in {binaries}: run cargo build --workspace --bins")
# Replaced in place, each file atomically (copy, then rename over): a SAM already running from
# this layout (another test, a start-lambda) keeps the files it has open.
for logical, binary in functions.items():
    os.makedirs(os.path.join(out, logical), exist_ok=True)
    target = os.path.join(out, logical, "bootstrap")
    shutil.copy2(os.path.join(binaries, binary), f"{target}.{os.getpid()}")
    os.replace(f"{target}.{os.getpid()}", target)
template_out = os.path.join(out, "template.yaml")
with open(f"{template_out}.{os.getpid()}", "w") as f:
    f.write("\n".join(lines) + "\n")
os.replace(f"{template_out}.{os.getpid()}", template_out)
print(f"sam-layout: {len(functions)} functions from {binaries} in {out}")
