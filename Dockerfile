# One image for the operator (`qc-operator run`) and the workers (`qc-worker`).
# Users build their worker image FROM this one and add their task code (README.md, "Images").

# --- build: a wheel of this project, with the pinned dependencies resolved into a virtualenv ---
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/qc
COPY pyproject.toml constraints.txt README.md ./
COPY common common
COPY operator operator
COPY worker worker
RUN /opt/qc/bin/pip install --no-compile "pip==25.3" \
 && /opt/qc/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/qc/bin/pip install --no-compile -c constraints.txt /wheels/*.whl

# --- runtime: no compilers, no pip caches, a non-root user ---
FROM python:3.11.7-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="queue-consumer-operator" \
      org.opencontainers.image.description="Queue Consumer Operator and its worker runtime" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 qc \
 && useradd --system --uid 10001 --gid qc --home-dir /app --shell /usr/sbin/nologin qc
COPY --from=build /opt/qc /opt/qc
# Pods run with a read-only root file system and a writable /tmp (an emptyDir): libraries that keep
# caches or configuration under $HOME (matplotlib's MPLCONFIGDIR, for one) write there, not in /app.
ENV PATH=/opt/qc/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /app
USER 10001:10001
EXPOSE 9100 9090 8080
# The operator's chart passes `qc-operator run ...`; worker pods run `qc-worker` (set by the operator).
ENTRYPOINT []
CMD ["qc-worker", "--help"]
