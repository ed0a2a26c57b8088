# The WebSocket listener and real-time worker for Cloud Run: `guesthub listen`, health on $PORT.
#   docker build -t guesthub-listener . && docker run -e DATABASE_URL=... -p 8080:8080 guesthub-listener
# Secrets (MEWS_CLIENT_TOKEN, MEWS_ACCESS_TOKEN, DATABASE_URL or SUPABASE_URL +
# SUPABASE_SERVICE_ROLE_KEY) come from Secret Manager as environment variables, never the image.
#
# Built from the wheel, as users install it: the wheel carries the migrations, the bootstrap,
# privileges.yaml and scheduler.yaml (shared/_data), so `guesthub db migrate` works in the image.
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md scheduler.yaml ./
COPY shared ./shared
COPY functions ./functions
COPY supabase ./supabase
RUN pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PORT=8080
COPY --from=wheel /dist /dist
RUN pip install /dist/*.whl && rm -rf /dist && useradd --uid 10001 --no-create-home listener
USER listener
EXPOSE 8080
# SIGTERM (Cloud Run shutting the instance down) closes the socket and exits cleanly
CMD ["guesthub", "listen"]
