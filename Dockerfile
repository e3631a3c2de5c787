# syntax=docker/dockerfile:1
# The scorestream image: Python 3.11, Java 17, pyspark and the pinned Kafka/Avro connector jars.
# One image serves every role in docker-compose.yml (train, score, produce); the command picks
# the role. Versions here must equal the project's pins (pyproject.toml, deps/*/pom.xml):
# tests/unit/test_compose.py checks that they do.

ARG PYTHON_VERSION=3.11.11
ARG DEBIAN_RELEASE=bookworm

# --- build stage: the wheel, and the connector jars resolved with Maven (Maven and the sources
# stay out of the final image) ---
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build
ARG JAVA_VERSION=17
RUN apt-get update \
 && apt-get install -y --no-install-recommends "openjdk-${JAVA_VERSION}-jre-headless" maven \
 && rm -rf /var/lib/apt/lists/*
ENV SCORESTREAM_CACHE=/opt/scorestream-cache
WORKDIR /src
# The whole package (scorestream/<folder> are symlinks to the top-level folders).
COPY pyproject.toml README.md ./
COPY deps/ deps/
COPY schemas/ schemas/
COPY scorestream/ scorestream/
COPY models/ models/
COPY producers/ producers/
COPY streaming/ streaming/
COPY monitoring/ monitoring/
RUN pip wheel --no-deps --no-cache-dir -w /dist . \
 && pip install --no-deps --no-cache-dir /dist/scorestream-*.whl
# The image needs Spark's connectors only; the broker bundle is for `scorestream stack`.
RUN cd / && python -c "from scorestream import jars; print(jars.ensure('spark-connectors'))" \
 && rm -rf /root/.m2

# --- final stage ---
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}
ARG JAVA_VERSION=17
ARG PYSPARK_VERSION=4.1.1
# libblas3: native BLAS for Spark ML (otherwise MLlib warns and falls back to Java math).
# tini: PID 1 that forwards SIGTERM, so the scorer finishes its batch and stops cleanly.
RUN apt-get update \
 && apt-get install -y --no-install-recommends "openjdk-${JAVA_VERSION}-jre-headless" libblas3 tini \
 && rm -rf /var/lib/apt/lists/*

# uid 185 is the `spark` user of the official apache/spark image: the registry and checkpoint
# volumes are shared with the Spark worker, so both sides write them as the same user.
RUN groupadd --system --gid 185 scorestream \
 && useradd --system --uid 185 --gid 185 --home-dir /opt/scorestream --no-create-home scorestream \
 && mkdir -p /var/lib/scorestream/registry /var/lib/scorestream/checkpoints /var/lib/scorestream/spark \
 && chown -R 185:185 /var/lib/scorestream

ENV SCORESTREAM_CACHE=/opt/scorestream-cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/scorestream
COPY --from=build /opt/scorestream-cache /opt/scorestream-cache
COPY --from=build /dist/ /dist/
COPY docker/ docker/
# The wheel, not a checkout: it carries the schemas, poms and monitoring files as package data.
# The explicit pyspark pin makes pip fail if it ever disagrees with pyproject.toml.
RUN pip install /dist/scorestream-*.whl "pyspark==${PYSPARK_VERSION}" \
 && rm -rf /dist \
 && python -c "import pyspark, sys; v = pyspark.__version__; sys.exit(0 if v == '${PYSPARK_VERSION}' else f'pyspark {v} != ${PYSPARK_VERSION}')" \
 && python -c "from scorestream import jars; print(len(jars.spark_connector_jars()), 'connector jars')" \
 && chmod 0755 docker/*.sh

USER 185:185
# A HOME the service user can write (Spark, matplotlib and friends keep small caches there).
ENV HOME=/var/lib/scorestream \
    PYSPARK_PYTHON=/usr/local/bin/python
ENTRYPOINT ["/usr/bin/tini", "--", "scorestream"]
CMD ["--help"]
