# prefect-gmat in a container: the package, the pip engine (gmatpy, GMAT R2026a) and its shim
# root prebuilt, for a Prefect docker or kubernetes work pool (prefect.yaml, docs/kubernetes.md).
#
# Build it with `./dev image`: that puts the wheels of the versions pinned in uv.lock, for the
# base image's Python, and the project's wheel in dist/image-context/, then runs
#   docker build --network none --build-arg BASE_IMAGE=... --build-arg GMAT_UID=... \
#     --build-arg GMAT_GID=... --tag prefect-gmat:VERSION .
# Nothing is fetched during the build (pip --no-index), so it needs no registry of packages.
#
# BASE_IMAGE: any Debian-like image with python3 >= 3.12 and its venv module. The default is
# for machines that can pull from a registry; `./dev image` builds local/debian:trixie with
# debootstrap when none answers.
ARG BASE_IMAGE=python:3.12-slim

# ---- deps: a virtualenv with the locked dependencies (rebuilt only when uv.lock changes) ----
FROM ${BASE_IMAGE} AS deps
COPY dist/image-context/requirements.txt /context/requirements.txt
COPY dist/image-context/wheels/ /context/wheels/
RUN python3 -m venv /opt/prefect-gmat/venv \
 && /opt/prefect-gmat/venv/bin/pip install --quiet --no-index --no-cache-dir \
      --disable-pip-version-check --find-links /context/wheels \
      --requirement /context/requirements.txt

# ---- the image: that virtualenv without the wheels it came from, then the project ----
FROM ${BASE_IMAGE}
# The user the container runs as. A host directory mounted at /sweeps must be writable by it:
# ./dev image uses the builder's own ids (1000:1000 when built as root).
ARG GMAT_UID=1000
ARG GMAT_GID=1000
ENV PATH=/opt/prefect-gmat/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/prefect-gmat/venv \
    PREFECT_GMAT_CACHE_DIR=/opt/prefect-gmat/cache \
    PREFECT_GMAT_OUTPUT_DIR=/sweeps \
    PREFECT_HOME=/tmp/prefect-home \
    HOME=/home/gmat \
    PYTHONUNBUFFERED=1
# Written into /etc/passwd directly: minimal Debian images have no useradd.
RUN echo "gmat:x:${GMAT_GID}:" >> /etc/group \
 && echo "gmat:x:${GMAT_UID}:${GMAT_GID}:prefect-gmat:/home/gmat:/bin/sh" >> /etc/passwd \
 && mkdir -p /home/gmat /sweeps \
 && chown "${GMAT_UID}:${GMAT_GID}" /home/gmat /sweeps
COPY --from=deps /opt/prefect-gmat/venv /opt/prefect-gmat/venv
# From here on a code change rebuilds: the project, then its shim root. The root is built
# once here (a container's first run finds it) and the engine started once to prove the
# image works; then the root is left read-only except output/, where GMAT writes its log,
# so a container that tried to rebuild it would fail loudly instead of paying for it.
COPY dist/image-context/dist/ /tmp/dist/
RUN pip install --quiet --no-index --no-cache-dir --disable-pip-version-check --no-deps \
      /tmp/dist/*.whl \
 && rm -rf /tmp/dist \
 && python -c "from prefect_gmat.blocks import GmatInstallation; print(GmatInstallation().check())" \
 && rm -rf /opt/prefect-gmat/cache/shim/*/output/* /tmp/prefect-home \
 && chmod -R a+rX,go-w /opt/prefect-gmat/cache \
 && chmod 1777 /opt/prefect-gmat/cache/shim/*/output
# Sweeps go under /sweeps: mount a host directory (docker) or a volume (kubernetes) there.
# No VOLUME line: docker would leave an anonymous volume behind every flow run.
WORKDIR /sweeps
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER ${GMAT_UID}:${GMAT_GID}
# A Prefect worker replaces this with `prefect flow-run execute`; alone, the image sweeps the
# demo grid: docker run --rm -v "$PWD/out:/sweeps" prefect-gmat:VERSION
CMD ["prefect-gmat", "demo", "--out", "/sweeps/demo"]
