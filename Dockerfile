# coder-task-agent as a container that runs next to AgentAPI (a sidecar sharing its network
# namespace, e.g. `--network=host` or one Kubernetes pod), configured only by the environment.
# See docs/deploy.md.
#
#   podman build -t coder-task-agent .        # or docker build
#   podman run --network=host -e CODER_AGENT_URL=... -e CODER_AGENT_TOKEN_FILE=... coder-task-agent

ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim

# ---- builder: a venv with the locked dependencies, then the project, without build tools after
FROM ${PYTHON_IMAGE} AS builder
# The Makefile's pin: the same uv that wrote uv.lock reads it.
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m pip install --quiet "uv==${UV_VERSION}" \
 && python3 -m venv /opt/venv

# Dependencies first, from the lock alone (hashes checked): this layer is rebuilt only when
# uv.lock changes, not on every code change.
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --no-dev --no-emit-project --quiet -o requirements.txt \
 && /opt/venv/bin/pip install --quiet --require-hashes -r requirements.txt

# Then the project itself, without dependencies (they are all in place already). pip,
# setuptools and the venv's activate scripts are build tools: not shipped. Everything is compiled
# here once: at run time the venv is read-only to the non-root user, and the stop path must
# start fast.
COPY README.md ./
COPY agent ./agent
RUN /opt/venv/bin/pip install --quiet --no-deps . \
 && /opt/venv/bin/python -m pip uninstall --quiet --yes pip setuptools \
 && rm -f /opt/venv/bin/[Aa]ctivate* /opt/venv/bin/pip* \
 && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib

# ---- final: the interpreter from the same base, the venv, a non-root user, nothing else
FROM ${PYTHON_IMAGE}
# 10001: an unprivileged id outside the range a distribution hands out, numeric so that
# Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --system --gid 10001 coder-task-agent \
 && useradd --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin coder-task-agent
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# Exec form: coder-task-agent is PID 1 and receives SIGTERM itself (no shell in between), and its
# stop path (snapshot upload within CODER_TASK_AGENT_SHUTDOWN_BUDGET, 5 s) fits in the 10 s
# `docker stop` / `podman stop` grant before SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["coder-task-agent"]
CMD ["run"]
