# Suggestion service image (what our katib-config entries run). Build from the repository root:
#   docker build -t ghcr.io/dcsa-project/dcsa:0.1.0 .
# Katib runs it as the suggestion container: `dcsa serve` on 0.0.0.0:6789 (gRPC) and 8000
# (/metrics). The same image runs the chart's katib-config Jobs (`dcsa katib-config add`).
#
# Base pinned by digest (a tag can be pushed again, a digest cannot). The digest is the one
# public projects pin for python:3.11.11-slim-bookworm; it was not checked against the registry
# from this repository's machines (no registry access): check it with
#   docker buildx imagetools inspect python:3.11.11-slim-bookworm
# Third-party Python packages come only from requirements/service.txt (every file's hash; made
# by scripts/lock.sh from pyproject.toml): no rich, matplotlib or pip in the runtime image.

FROM python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5 AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements/service.txt requirements/build.txt ./requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/build.txt \
    && pip install --no-cache-dir --require-hashes -r requirements/service.txt
COPY pyproject.toml README.md ./
COPY suggestion_service ./suggestion_service
# The package itself (no PYTHONPATH tricks): its dependencies are all installed above, and no
# build isolation, which would fetch setuptools without a hash. Then the installers go.
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && pip check \
    && dcsa --version \
    && python -c "import suggestion_service.server, suggestion_service.k8s.configmap, kubernetes" \
    && python -m pip uninstall --yes --quiet setuptools wheel packaging pip \
    && python -c "import importlib.util as u, sys; sys.exit([m for m in ('pip', 'rich', 'matplotlib', 'setuptools') if u.find_spec(m)])"

FROM python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5
LABEL org.opencontainers.image.title="dcsa" \
      org.opencontainers.image.description="DC/SA Bayesian optimization suggestion service for Kubeflow Katib" \
      org.opencontainers.image.licenses="Apache-2.0"
# The base image's own pip, setuptools and wheel go too: nothing installs at run time.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
    && rm -f /usr/local/bin/pip /usr/local/bin/pip3 /usr/local/bin/pip3.11
COPY --from=build /opt/venv /opt/venv
# Non-root numeric UID (runAsNonRoot can verify it; the chart's securityContext uses the same).
# Nothing is written at run time, so a read-only root filesystem needs no extra volume.
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin dcsa
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /tmp
USER 65532:65532
EXPOSE 6789 8000
ENTRYPOINT ["dcsa"]
CMD ["serve"]
