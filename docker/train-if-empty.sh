#!/bin/sh
# Compose service `train`: train and promote a first model unless the registry has a champion.
# Settings come from the SCORESTREAM_* environment (see `scorestream train --help`).
set -eu
if scorestream models show champion >/dev/null 2>&1; then
  echo "registry ${SCORESTREAM_REGISTRY:-.scorestream/registry} already has a champion; not training"
  exit 0
fi
exec scorestream train
