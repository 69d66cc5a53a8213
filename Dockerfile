# The rightsizer operator image: `rightsizer run` as a non-root user on a slim Python base, with the runtime
# dependencies pinned in requirements.lock (the versions the tests ran with; `make lock`).
#
#   docker build -t ghcr.io/rightsizer/rightsizer:0.1.0 .
#
# The chart runs it with a read-only root filesystem: the process writes only to /tmp and /var/cache/rightsizer
# (emptyDir volumes). Pin the base image by digest in your build pipeline (e.g. python:3.11.11-slim-bookworm@sha256:…).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv /opt/rightsizer
COPY requirements.lock .
RUN /opt/rightsizer/bin/pip install --no-deps --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY operator/ operator/
# The package only: its dependencies are already installed, exactly as locked (setuptools builds it in an isolated
# build environment that does not reach the image).
RUN /opt/rightsizer/bin/pip install --no-deps . \
    && /opt/rightsizer/bin/rightsizer --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="rightsizer" \
      org.opencontainers.image.description="Kubernetes operator that right-sizes vLLM deployments on GPU node pools" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/rightsizer/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=build /opt/rightsizer /opt/rightsizer
# 65532: the conventional "nonroot" uid/gid; the chart's securityContext uses the same.
USER 65532:65532
# metrics, health (liveness/readiness), admission webhook
EXPOSE 8080 8081 9443
ENTRYPOINT ["rightsizer"]
CMD ["run"]
