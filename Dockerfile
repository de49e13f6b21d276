# The journey worker. Build: docker build -t journey .   Run: see docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY journey ./journey
RUN pip install --no-cache-dir . && useradd --system --uid 10001 journey \
    && mkdir -p /data && chown journey /data
USER journey
ENV JOURNEY_DATA_DIR=/data JOURNEY_WEB_HOST=0.0.0.0
EXPOSE 6066
ENTRYPOINT ["journey"]
CMD ["worker"]
