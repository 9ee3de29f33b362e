# The MLflow tracking and registry server of compose.yaml: MLflow and the PostgreSQL driver, at
# the versions requirements.lock pins (a test checks they agree).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_DISABLE_TELEMETRY=true
RUN pip install --no-cache-dir mlflow==3.17.2 "psycopg[binary]==3.3.9"
RUN useradd --create-home --uid 10001 mlflow \
    && mkdir -p /mlartifacts \
    && chown mlflow /mlartifacts
USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
