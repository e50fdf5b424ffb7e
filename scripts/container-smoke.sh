#!/usr/bin/env bash
# Builds the Dockerfile's image and runs it as an operator would: waits until the image's own
# HEALTHCHECK passes, checks that node is PID 1 and not root, runs one Detect (the default model and the
# ONNX Runtime worker modules), fetches the demo bundle (esbuild at request time), then stops the
# container (SIGTERM) and expects a drained exit 0.
#
# Not part of .ci/run: it needs a container engine and the base image. The same install step, file
# layout, CMD and HEALTHCHECK are tested without an engine by test/container-layout.test.ts.
#
#   scripts/container-smoke.sh                 # docker, or podman where docker has no engine
#   ENGINE=podman BUILD_OPTS="--network=host" scripts/container-smoke.sh
#   NODE_IMAGE=registry.example/node:20-bookworm-slim scripts/container-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-$(docker info >/dev/null 2>&1 && echo docker || echo podman)}
IMAGE=${IMAGE:-hazard-stream:smoke}
NAME=hazard-stream-smoke-$$
PORT=${SMOKE_PORT:-18080}
build=(build -t "$IMAGE")
# podman writes OCI images by default, which have no HEALTHCHECK.
[ "$ENGINE" = podman ] && build+=(--format docker)
[ -n "${NODE_IMAGE:-}" ] && build+=(--build-arg "NODE_IMAGE=$NODE_IMAGE")
# shellcheck disable=SC2206 # BUILD_OPTS is a list of options
build+=(${BUILD_OPTS:-} .)

fail() {
  echo "FAIL: $*" >&2
  "$ENGINE" logs "$NAME" 2>&1 | tail -20 >&2 || true
  exit 1
}
trap '"$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true' EXIT

echo "== $ENGINE ${build[*]}"
"$ENGINE" "${build[@]}"

echo "== run, port $PORT"
"$ENGINE" run -d --name "$NAME" -p "127.0.0.1:$PORT:8080" "$IMAGE" >/dev/null

# The image's HEALTHCHECK command itself, run the way the engine runs it (inside the container).
mapfile -d '' check < <("$ENGINE" image inspect "$IMAGE" --format '{{json .Config.Healthcheck.Test}}' |
  node -e 'const t = JSON.parse(require("fs").readFileSync(0, "utf8")); if (t[0] !== "CMD") process.exit(1); for (const a of t.slice(1)) process.stdout.write(a + "\0")')
[ "${#check[@]}" -gt 0 ] || fail "the image has no exec-form HEALTHCHECK"
healthy=""
for _ in $(seq 1 120); do
  if "$ENGINE" exec "$NAME" "${check[@]}" >/dev/null 2>&1; then healthy=1; break; fi
  sleep 1
done
[ -n "$healthy" ] || fail "HEALTHCHECK did not pass within 120 s"
echo "healthy: $(curl -fsS "http://127.0.0.1:$PORT/stream/health")"

pid1=$("$ENGINE" exec "$NAME" sh -c 'tr "\0" " " </proc/1/cmdline; echo "(uid $(stat -c %u /proc/1))"')
echo "PID 1: $pid1"
case "$pid1" in
  "node --import tsx src/main.ts (uid 0)") fail "PID 1 runs as root" ;;
  "node --import tsx src/main.ts (uid "*) ;;
  *) fail "PID 1 is not the service: $pid1" ;;
esac

# A road-gray 320x240 JPEG made inside the container with the image's own sharp.
jpeg=$("$ENGINE" exec "$NAME" node -e 'require("sharp")({ create: { width: 320, height: 240, channels: 3, background: "#6b6b6b" } }).jpeg().toBuffer().then((b) => process.stdout.write(b.toString("base64")))')
detect=$(curl -fsS -H 'Content-Type: application/json' \
  --data-binary "{\"frame\":{\"imageData\":\"$jpeg\",\"frameId\":\"smoke\"}}" \
  "http://127.0.0.1:$PORT/hazard.stream.v1.DetectionService/Detect") || fail "Detect failed"
echo "Detect: $detect"
grep -q '"imageWidth":320' <<<"$detect" || fail "Detect answered without the frame's size"

type=$(curl -fsS -o /dev/null -w '%{content_type}' "http://127.0.0.1:$PORT/demo/demo.js") || fail "no demo bundle"
echo "demo.js: $type"
[[ "$type" == text/javascript* ]] || fail "demo.js is $type"

echo "== $ENGINE stop (SIGTERM)"
"$ENGINE" stop -t 20 "$NAME" >/dev/null
code=$("$ENGINE" inspect "$NAME" --format '{{.State.ExitCode}}')
logs=$("$ENGINE" logs "$NAME" 2>&1)
grep -q 'SIGTERM: draining streams' <<<"$logs" || fail "no drain in the log"
grep -q 'shutdown complete' <<<"$logs" || fail "shutdown did not complete"
[ "$code" = 0 ] || fail "exit code $code"
echo "stopped: drained, exit code 0"
echo "OK"
