# Sonoran CAD dispatch bot. Configuration: mount config.toml at /config/config.toml and/or pass
# SONORAN_BOT_* variables (secrets: SONORAN_BOT_DISCORD__TOKEN, SONORAN_BOT_SONORAN__API_KEY).
# State (SQLite, health stamp) lives on the /data volume.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SONORAN_BOT_CONFIG=/config/config.toml \
    SONORAN_BOT_STATE__PATH=/data/state.sqlite3 \
    SONORAN_BOT_STATE__HEALTH_FILE=/data/last-poll

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin bot \
    && mkdir -p /data /config \
    && chown bot /data

USER bot
VOLUME ["/data"]

# Healthy while the feed loop completes cycles: the bot stamps /data/last-poll after each one.
HEALTHCHECK --interval=60s --timeout=10s --start-period=90s --retries=3 CMD ["python", "-m", "bot", "health"]

# The same entry point the tests run (`python -m bot run`); `check` and `sync` work the same way:
#   docker run --rm -v ./config.toml:/config/config.toml:ro IMAGE check
ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
