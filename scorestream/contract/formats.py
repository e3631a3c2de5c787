"""The wire formats of events and scores on Kafka: one list for producers, scorer, subscribers."""

JSON = "json"
AVRO = "avro"  # plain Avro binary against the schema in schemas/
CONFLUENT_AVRO = "confluent-avro"  # magic byte 0 + 4-byte schema id + Avro binary
FORMATS = (JSON, AVRO, CONFLUENT_AVRO)
