#!/usr/bin/env bash
# `sam local invoke` one function against the local stack (moto and, for submit, the vendor
# simulator), building what is missing:
#   scripts/sam-invoke.sh FUNCTION EVENT_FILE        e.g. IntakeFunction events/sqs-s3-put.json
#   make invoke FN=intake EVENT=events/sqs-s3-put.json
# The functions are x86_64 here (Architecture=x86_64); their binaries come from the debug build
# laid out as `sam build` lays them out (scripts/sam-layout.py), or from a real
# `sam build` (cargo lambda) with SAM_BUILD=1. The stack is provisioned in moto as
# `sam-local-<moto's pid>` (STACK to change) and stays there between invokes; its environment
# goes to `--env-vars`, with OCRBRIDGE_LOCAL_ENDPOINT pointing the functions at moto, and the
# sample event's bucket and secret names are rewritten to the stack's. The container reaches moto (and the simulator, when
# VENDOR_BASE_URL names a loopback port) through Docker's bridge gateway, where
# scripts/docker-bridge.py forwards to the host's loopback for the length of the invoke.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fn=${1:?usage: scripts/sam-invoke.sh FUNCTION EVENT_FILE}
event=${2:?usage: scripts/sam-invoke.sh FUNCTION EVENT_FILE}
case "$fn" in
  intake|submit|webhook|parse|reconcile|rotate) fn="$(tr '[:lower:]' '[:upper:]' <<<"${fn:0:1}")${fn:1}Function" ;;
esac
scripts/setup.sh >/dev/null
moto_port=${OCRBRIDGE_MOTO_PORT:-5055}
# The local stack stays up after the invoke (the next function's input is in it): moto is
# started if it is not running, and left running (`make moto-stop` stops it).
scripts/moto.sh status >/dev/null 2>&1 || scripts/moto.sh start
endpoint="http://127.0.0.1:$moto_port"
gateway=$(scripts/docker-gateway.sh)
image_args=$(scripts/lambda-image.sh)
if [ "${SAM_BUILD:-0}" = 1 ]; then
  SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam build --parameter-overrides Architecture=x86_64
else
  cargo build --quiet --workspace --bins
  python3 scripts/sam-layout.py >/dev/null
fi
# One stack per moto process: a restarted moto (empty) gets a freshly provisioned stack.
moto_pid=$(cat ".local/moto-$moto_port.pid" 2>/dev/null || echo 0)
stack=${STACK:-sam-local-$moto_pid}
env_file=.local/$stack.env
if [ ! -f "$env_file" ]; then
  cargo build --quiet -p ocrbridge-local --bin ocrbridge-local
  target/debug/ocrbridge-local --endpoint "$endpoint" provision --stack "$stack" --env-out "$env_file" >/dev/null
fi
vendor_port=$(sed -n 's|^http://127\.0\.0\.1:\([0-9]*\).*|\1|p' <<<"${VENDOR_BASE_URL:-}")
python3 - "$env_file" "$gateway" "$moto_port" "${VENDOR_BASE_URL:-}" > ".local/$stack.env.json" <<'PY'
import json, sys
env_file, gateway, moto_port, vendor = sys.argv[1:5]
env = {}
for line in open(env_file):
    line = line.strip()
    if line.startswith("export ") and "=" in line:
        k, v = line[len("export "):].split("=", 1)
        env[k] = v
env["OCRBRIDGE_LOCAL_ENDPOINT"] = f"http://{gateway}:{moto_port}"
env["AWS_ENDPOINT_URL"] = env["OCRBRIDGE_LOCAL_ENDPOINT"]
env["VENDOR_BASE_URL"] = vendor.replace("127.0.0.1", gateway) if vendor else "http://127.0.0.1:9"
# The local stack does not emulate AWS::SecretsManager::RotationSchedule, so no secret has
# rotation enabled: the rotate function is told not to require it.
print(json.dumps({"Parameters": env, "RotateFunction": {"REQUIRE_ROTATION_ENABLED": "false"}}))
PY
# The sample events name the template's resources in a real account: point them at this stack,
# and put a sample document where an S3 event says one was uploaded, if nothing is there.
.venv/bin/python - "$env_file" "$event" "$endpoint" > ".local/$stack.event.json" <<'PY'
import json, re, sys, urllib.parse
import boto3
env_file, event_file, endpoint = sys.argv[1:4]
env = dict(l.strip()[len("export "):].split("=", 1) for l in open(env_file) if l.startswith("export ") and "=" in l)
text = open(event_file).read()
text = re.sub(r"ocrbridge-documents-[0-9]+-[a-z0-9-]+", env["DOCUMENTS_BUCKET"], text)
text = re.sub(r"arn:aws:secretsmanager:[^\"]*webhook-signing-secret[^\"]*", env["WEBHOOK_SECRET_ARN"], text)
text = text.replace("096fKKXTRTtl3on89fVO.nfljtsv6qko", "")
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
for key in re.findall(r'\\?"key\\?":\s*\\?"([^"\\]+)', text):
    key = urllib.parse.unquote_plus(key)
    try:
        s3.head_object(Bucket=env["DOCUMENTS_BUCKET"], Key=key)
    except Exception:
        s3.put_object(Bucket=env["DOCUMENTS_BUCKET"], Key=key, ContentType="image/png",
                      Body=open("samples/receipts/harbour-noodle.png", "rb").read())
        print(f"sam-invoke: put samples/receipts/harbour-noodle.png at s3://{env['DOCUMENTS_BUCKET']}/{key}", file=sys.stderr)
print(text)
PY
event=".local/$stack.event.json"
python3 scripts/docker-bridge.py "$gateway" "$moto_port" $vendor_port > ".local/docker-bridge.log" 2>&1 &
bridge=$!
trap 'kill $bridge 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^docker-bridge:' .local/docker-bridge.log && break; kill -0 $bridge 2>/dev/null || break; sleep 0.1; done
if ! kill -0 $bridge 2>/dev/null; then
  echo "sam-invoke: the bridge to the local stack did not start:" >&2
  cat .local/docker-bridge.log >&2
  exit 1
fi
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 SAM_CLI_TELEMETRY=0
# shellcheck disable=SC2086
.venv-sam/bin/sam local invoke "$fn" -e "$event" --env-vars ".local/$stack.env.json" \
  --parameter-overrides Architecture=x86_64 $image_args
