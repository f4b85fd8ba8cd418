# Sonoran CAD dispatch bot. Configuration: mount config.toml at /config/config.toml and/or pass
# SONORAN_BOT_* variables (secrets: SONORAN_BOT_DISCORD__TOKEN, SONORAN_BOT_SONORAN__API_KEY).
# State (SQLite, health stamp) lives on the /data volume, which uid 10001 must own.
# Build with `docker build`, or `podman build --format docker` (the OCI format drops HEALTHCHECK).

# --- build: a virtualenv with the dependencies, then the bot; nothing else leaves this stage ---
# The base is pinned to a patch release; change both FROM lines together.
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# The dependencies come from pyproject.toml alone, in their own layer: editing the code or the
# README does not reinstall them.
# constraints.txt pins every version, so that two builds of one commit install the same.
COPY pyproject.toml constraints.txt ./
# (with the `websocket` extra, so that push.websocket = true works in the image too)
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['websocket']))" \
        > /tmp/requirements.txt \
    && /opt/venv/bin/pip install -c constraints.txt -r /tmp/requirements.txt
COPY README.md LICENSE ./
COPY bot ./bot
COPY cogs ./cogs
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools  # nothing is installed at run time

# --- run: the virtualenv only, no source tree, no build tools, no pip ---
FROM python:3.11.14-slim-bookworm
# tini as PID 1 forwards SIGTERM to the bot from the first instant (a PID 1 without a handler
# ignores it, and `docker stop` would wait 10 s and kill)
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && python -m pip uninstall --yes pip setuptools wheel \
    && rm -rf /usr/local/lib/python3.11/ensurepip/_bundled \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin bot \
    && mkdir -p /data /config \
    && chown bot /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SONORAN_BOT_CONFIG=/config/config.toml \
    SONORAN_BOT_STATE__PATH=/data/state.sqlite3 \
    SONORAN_BOT_STATE__HEALTH_FILE=/data/last-poll

USER bot
WORKDIR /data
VOLUME ["/data"]
# the push listener, when [push] enabled = true (publish it with -p 3232:3232, behind TLS)
EXPOSE 3232

# Healthy while the feed loop lives: it stamps /data/last-poll after every cycle and at least once a
# minute, also while the CAD is failing (a restart fixes no Sonoran outage; `python -m bot health`
# prints the CAD's state). No Python starts for it: find and test are the shell's.
HEALTHCHECK --interval=60s --timeout=5s --start-period=90s --retries=3 \
    CMD ["/bin/sh", "-c", "test -n \"$(find /data/last-poll -mmin -5 2>/dev/null)\""]

# The same entry point the tests run (`python -m bot run`); `check` and `sync` work the same way:
#   docker run --rm -v ./config.toml:/config/config.toml:ro IMAGE check
ENTRYPOINT ["tini", "--", "python", "-m", "bot"]
CMD ["run"]
