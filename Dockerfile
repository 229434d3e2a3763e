# The Deus Plastic Surgery assistant as a container: `docker compose up` (see docs/deploy.md).
FROM python:3.12-slim

# No .pyc writes at run time (the image's are compiled below), logs unbuffered.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, so an FAQ edit rebuilds in seconds.
COPY pyproject.toml README.md ./
COPY bot/__init__.py bot/__init__.py
RUN pip install --quiet . && pip uninstall --quiet --yes deus-smas-bot
COPY bot bot
COPY faq faq
COPY config.example.yaml ./
# Editable: the FAQ folder stays beside the code (/app/faq), where the bot looks by default.
RUN pip install --quiet --no-deps -e . && python -m compileall -q bot \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin bot \
    && mkdir -p /data && chown bot /data

USER bot
# The database, its lock and backups live on the volume; the config may too (BOT_CONFIG).
VOLUME ["/data"]
ENV BOT_DATABASE=/data/bot.sqlite3
# Healthy: alive, polling (or receiving webhooks) and sending; see `python -m bot health`.
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 CMD ["python", "-m", "bot", "health"]
# Webhook mode listens here (telegram.webhook.port); polling needs no port.
EXPOSE 8443
# SIGTERM lets the bot finish in-flight sends (within 5 s).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "run"]
