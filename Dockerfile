# hazard-stream with its default model (models/road-hazard-yolo.onnx).
#   docker build -t hazard-stream .
#   docker run --rm -p 8080:8080 hazard-stream
# Scale-out (nginx, two instances, Redis): deploy/compose.yaml. Probes and signals: deploy/README.md.
# test/container-layout.test.ts runs this file's install step, file layout, CMD and HEALTHCHECK outside
# a container; scripts/container-smoke.sh builds and runs the image where an engine is available.

# Another Node 20 base (a mirror, a pinned digest) can be passed with --build-arg NODE_IMAGE=….
ARG NODE_IMAGE=node:20-bookworm-slim

# Dependencies in their own stage: the layer is rebuilt only when package*.json change, and npm's cache
# stays behind. Production dependencies only: tsx (the TypeScript loader that runs src/) is one;
# typescript, vitest and buf are not. --ignore-scripts: no runtime dependency needs its install script
# (sharp and esbuild ship their binaries as platform packages; onnxruntime-node's only fetches CUDA
# libraries from NuGet, which .npmrc skips anyway), so the build reaches nothing but the npm registry.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
# HOST: all interfaces inside the container (the service's default is loopback only).
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# What the service reads at run time: its TypeScript (run by tsx; src/web/page is bundled by esbuild on
# the first /demo request), the generated API code, the ONNX Runtime worker modules beside it in
# src/inference/, and models/ (the default MODEL_PATH resolves to ../models from src/). tsconfig.json:
# tsx and esbuild compile as the type check does.
COPY package.json tsconfig.json ./
COPY gen ./gen
COPY src ./src
COPY models ./models
# Files stay root's: the service cannot change its code or model. It writes only tsx's compile cache,
# in the temp directory (/tmp; give it an emptyDir with a read-only root filesystem).
USER node
EXPOSE 8080
# Node has fetch and the image has no curl. The same answer as the gRPC health service (200 = SERVING).
# Plain HTTP: with TLS_CERT_FILE set, override this check (or probe gRPC health with TLS).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/stream/health`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node is PID 1, not npm or a shell: SIGTERM from `docker stop` or Kubernetes reaches the service, which
# drains (README, Operations) and exits 0 within SHUTDOWN_TIMEOUT_MS (10 s) plus 2 s; give it a longer
# grace than that (`docker stop -t 15`, compose stop_grace_period, terminationGracePeriodSeconds 30 is
# Kubernetes' default). It handles SIGTERM and SIGINT itself, and its only child process (esbuild's
# service, for the demo bundle) is its own to reap, so it needs no init (`--init` does no harm).
CMD ["node", "--import", "tsx", "src/main.ts"]
