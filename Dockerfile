# The API alone, installed from the package's serve extra (no Spark, DVC or Jupyter inside):
#   make pipeline                      # writes models/
#   docker build -t doodle-api .
#   docker run --rm -p 8000:8000 -v "$PWD/models:/models:ro" -v doodle-feedback:/data doodle-api
# Settings are the DOODLE_* variables of the README's settings table (docker run -e ...);
# compose.yaml runs two replicas of it on PostgreSQL and an MLflow registry.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY doodle/ doodle/
COPY serving/ serving/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
# Packages beside the serve extra: compose.yaml's replicas add mlflow-skinny, the registry client.
ARG EXTRA_REQUIREMENTS=""
# The lock's exact versions, as `make` installs them.
RUN pip install --no-cache-dir --constraint /tmp/requirements.lock "$(ls /wheels/*.whl)[serve]" $EXTRA_REQUIREMENTS \
    && rm -rf /wheels /tmp/requirements.lock
RUN useradd --create-home --uid 10001 doodle \
    && mkdir -p /models /data \
    && chown doodle /data
USER doodle
WORKDIR /home/doodle
ENV DOODLE_MODEL_PATH=/models \
    DOODLE_FEEDBACK_DB=/data/feedback.sqlite
VOLUME ["/data"]
EXPOSE 8000
# Healthy once the model is loaded and predictions are served (/readyz answers 200, else 503).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["uvicorn", "serving.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
