# syntax=docker/dockerfile:1
# Image that trains (and resumes) a mario agent on a GPU host; see docs/DOCKER.md.
#
#   docker build -t mario .            # torch from PyPI (its CUDA build), for `--gpus all`
#   scripts/docker_smoke.sh            # CI: podman, a local Debian base, the CPU torch wheel
#
# PyPI's torch wheels carry their own CUDA libraries, so a plain Debian base suffices: the host
# needs only the NVIDIA driver and the NVIDIA container toolkit, no CUDA base image.
# BASE_IMAGE: Debian 13 "trixie" (its python3 is 3.13: the maintained game libraries, nes-py 9,
# as binary wheels, no compiler) or Debian 12 "bookworm" (python3 3.11: the classic nes-py
# 8.2.1, compiled from source; the CI smoke test uses it, see scripts/docker_smoke.sh), or an
# image derived from either.
ARG BASE_IMAGE=debian:trixie-slim

# ---------------------------------------------------------------------------------------------
# python: Debian's Python; below Python 3.13 also a C++ compiler (nes-py 8.2.1 has no wheel:
# pip compiles its emulator). From 3.13 nes-py 9 comes as a wheel and nothing is compiled.
FROM ${BASE_IMAGE} AS python
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 13))'; then \
        apt-get install -y --no-install-recommends python3-dev g++; \
    fi \
    && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------------------
# requirements: the dependency list from pyproject.toml and the pins from constraints.txt (all
# but torch's: the torch layer below decides it). Only a change of these two files' contents
# redoes the dependency layers; an edit of pyproject's tool settings does not.
# EXTRAS: optional dependency groups to add, comma-separated (distributed: Ray, for
# docs/DISTRIBUTED.md).
FROM python AS requirements
ARG EXTRAS=
COPY pyproject.toml constraints.txt /src/
RUN mkdir /req \
    && python3 -c "import os, tomllib; p = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + [d for e in os.environ['EXTRAS'].split(',') if e for d in p['optional-dependencies'][e]]))" > /req/requirements.txt \
    && { grep -vE '^[[:space:]]*torch[[:space:]]*([=<>!~;[]|$)' /src/constraints.txt || true; } > /req/constraints.txt

# ---------------------------------------------------------------------------------------------
# deps: a virtual environment in /opt/venv with the dependencies, not the package (editing the
# source must not redo these layers, nor the copy of this venv into the runtime image).
FROM python AS deps
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=180
RUN python3 -m venv /opt/venv && pip install --upgrade "pip>=24" "setuptools>=68" wheel

# torch first, in its own layer (most of the image). Wheels in docker/wheels/ (bind-mounted, so
# not copied into any layer) are preferred when they satisfy TORCH_SPEC: CI puts the CPU wheel
# there. TORCH_INDEX_URL picks another index, e.g. https://download.pytorch.org/whl/cu128.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=
RUN --mount=type=bind,source=docker/wheels,target=/wheels \
    pip install --find-links /wheels ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"

# The other dependencies, with torch held at the build installed above (the resolver must not
# swap the CPU or CUDA build for another one).
COPY --from=requirements /req /req
RUN pip freeze | grep -E '^torch==' >> /req/constraints.txt \
    && pip install -r /req/requirements.txt -c /req/constraints.txt

# ---------------------------------------------------------------------------------------------
# package: the project's wheel (a rebuild after a source edit starts here).
FROM deps AS package
COPY pyproject.toml README.md* /src/
COPY mario /src/mario
COPY wrappers /src/wrappers
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /dist /src

# ---------------------------------------------------------------------------------------------
# runtime: Python, the venv, a non-root user. No compiler.
FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
# tini is PID 1: it forwards SIGTERM to mario (the trainer then saves a checkpoint and exits 0)
# and reaps the environment worker processes. Python as PID 1 would ignore SIGTERM in every
# command without a handler of its own (`docker stop` then waits and kills it).
# ca-certificates: W&B's uploader uses the system's trust store.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 tini ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# The image's user is 1000:1000; any other uid works too (docker run --user "$(id -u):$(id -g)"
# so that files on the host belong to the host user): HOME and the caches are in /tmp and
# /app/checkpoints is writable by everyone (a named volume copies these permissions).
RUN groupadd --gid 1000 mario \
    && useradd --uid 1000 --gid 1000 --home-dir /app --no-create-home --shell /usr/sbin/nologin mario \
    && mkdir -p /app/checkpoints \
    && chown 1000:1000 /app /app/checkpoints \
    && chmod 1777 /app/checkpoints

COPY --from=deps /opt/venv /opt/venv
COPY --from=package /dist /tmp/dist
RUN /opt/venv/bin/pip install --no-deps --no-cache-dir --disable-pip-version-check /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && /opt/venv/bin/pip check --disable-pip-version-check \
    && /opt/venv/bin/mario --version

# USER: getpass.getuser() (torch, wandb) fails for a uid without a passwd entry otherwise.
# WANDB_API_KEY is deliberately not set: pass it at run time (-e WANDB_API_KEY).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    USER=mario \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

LABEL org.opencontainers.image.title="mario" \
      org.opencontainers.image.description="Double-DQN agents for Super Mario Bros: resumable training, replay videos" \
      org.opencontainers.image.licenses="MIT"

USER 1000:1000
WORKDIR /app
VOLUME /app/checkpoints
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "mario"]
# Resume by default: the first start creates /app/checkpoints/run, every later start (restart
# policy, docker start, a new container on the same volume) continues from its newest checkpoint.
CMD ["train", "--run-dir", "/app/checkpoints/run", "--resume", "--idle-when-done"]
