"""Online side: the streaming scorer (Kafka in -> validate -> PipelineModel -> Kafka out)."""
