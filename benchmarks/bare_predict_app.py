"""The floor `predict_overhead.py` measures the API against: a FastAPI app whose ``/predict``
only validates the API's request schema (`serving.schemas.PredictRequest`, 784 numbers in
[0, 1]) with FastAPI's own JSON parsing and answers a constant, and a ``/healthz`` to wait on.

    uvicorn --app-dir benchmarks bare_predict_app:create_app --factory
"""

from __future__ import annotations

from fastapi import FastAPI

from serving.schemas import PredictRequest


def create_app() -> FastAPI:
    app = FastAPI(title="bare /predict: validation only")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(body: PredictRequest) -> dict[str, int]:
        return {"Result": 0}

    return app
