# Suggestion service image (what our katib-config entries run). Build from the repository root:
#   docker build -t ghcr.io/dcsa-project/dcsa:0.1.0 .
# Katib runs it as the suggestion container: `dcsa serve` on 0.0.0.0:6789 (gRPC) and 8000
# (/metrics). The same image runs the chart's katib-config Jobs (`dcsa katib-config add`).

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY suggestion_service ./suggestion_service
# The package itself (no PYTHONPATH tricks) with the Kubernetes client for `dcsa katib-config`.
RUN pip install --no-cache-dir "./[k8s]" \
    && dcsa --version \
    && python -c "import suggestion_service.server, suggestion_service.k8s.configmap, kubernetes"

FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="dcsa" \
      org.opencontainers.image.description="DC/SA Bayesian optimization suggestion service for Kubeflow Katib" \
      org.opencontainers.image.licenses="Apache-2.0"
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
