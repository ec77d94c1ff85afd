# Passthru in a container: `docker build -t passthru .`, then see README, "Docker".
# /etc/passthru/config.yaml and /etc/passthru/identifiers/ are the mount points; the image ships
# the default config and the example identifiers there. Identifier files are reloaded live.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The runtime dependencies are pinned to the versions the test suite ran with.
WORKDIR /build
COPY pyproject.toml README.md requirements-test.txt ./
COPY passthru ./passthru
RUN pip install --no-cache-dir --constraint requirements-test.txt . \
    && rm -rf /build \
    && groupadd --system --gid 10001 passthru \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin passthru

COPY docker/config.yaml /etc/passthru/config.yaml
COPY identifiers/ /etc/passthru/identifiers/
COPY docker/healthcheck.py /usr/local/lib/passthru/healthcheck.py

USER 10001:10001
WORKDIR /etc/passthru
EXPOSE 8443

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "/usr/local/lib/passthru/healthcheck.py", "/etc/passthru/config.yaml"]

# `docker run passthru` runs the server; `docker run passthru identifiers list -c …` etc. also work.
ENTRYPOINT ["passthru"]
CMD ["run", "-c", "/etc/passthru/config.yaml"]
