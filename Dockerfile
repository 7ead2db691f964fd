# syntax=docker/dockerfile:1
# One image for every service: `docker run hookstream run <service>` (ingress, normalizer, delivery,
# crm, inventory, risk, fulfillment, notifications, admin), `… setup` for migrations and topics.
# Reproducible: the dependencies are the hash-pinned requirements.lock, the build tools build.lock
# (`make lock` refreshes both).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock build.lock ./
RUN python -m venv /opt/hookstream \
    && /opt/hookstream/bin/pip install --require-hashes --no-deps -r requirements.lock \
    && python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --no-deps -r build.lock
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
COPY schemas ./schemas
# EXTRAS=tools adds the CLI and the sandbox (the dev overlay's stand-in systems); unpinned, for development only.
ARG EXTRAS=""
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
    && if [ -n "$EXTRAS" ]; then /opt/hookstream/bin/pip install "$(ls /tmp/wheels/*.whl)[$EXTRAS]"; \
       else /opt/hookstream/bin/pip install --no-deps /tmp/wheels/*.whl; fi \
    && /opt/hookstream/bin/python -m compileall -q /opt/hookstream/lib

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 hookstream \
    && useradd --system --uid 10001 --gid hookstream --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin hookstream
COPY --from=build /opt/hookstream /opt/hookstream
ENV PATH=/opt/hookstream/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOOKSTREAM_HEALTH_HOST=0.0.0.0 \
    HOOKSTREAM_LOG_JSON=true
USER 10001:10001
WORKDIR /nonexistent
# ingress 8080, admin 8070; every service's probe and /metrics port (9401 normalizer … 9408 admin)
EXPOSE 8080 8070 9401 9402 9403 9404 9405 9406 9407 9408
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["hookstream", "probe"]
# SIGTERM drains: stop fetching, finish in-flight work, commit, flush, close (up to 30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["hookstream"]
CMD ["run", "--help"]
