#!/usr/bin/env bash
# Create the scorer's topics if missing (runs in the apache/kafka image, compose service `topics`).
# Usage: create-topics.sh BOOTSTRAP PARTITIONS REPLICATION TOPIC...
# With three or more replicas each topic gets min.insync.replicas=2, as ensure_topics does.
set -euo pipefail
if [ "$#" -lt 4 ]; then
  echo "usage: $0 BOOTSTRAP PARTITIONS REPLICATION TOPIC..." >&2
  exit 2
fi
bootstrap=$1 partitions=$2 replication=$3
shift 3
extra=()
if [ "$replication" -ge 3 ]; then
  extra=(--config min.insync.replicas=2)
fi
for topic in "$@"; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$topic" --partitions "$partitions" --replication-factor "$replication" "${extra[@]}"
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --describe --topic "$topic"
done
