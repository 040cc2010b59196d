#!/usr/bin/env bash
# Regenerates the committed Python modules of the Pub/Sub protocol from
# src/opencadence/api/pubsub_proto/pubsub_api.proto (needs grpcio-tools, in the test extra).
# Run after changing the .proto; commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
"$py" -m grpc_tools.protoc -I src --python_out=src --pyi_out=src --grpc_python_out=src \
  src/opencadence/api/pubsub_proto/pubsub_api.proto
