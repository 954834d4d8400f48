"""The floor: a bare ASGI app that parses the JSON, calls the model and answers.

    python benchmarks/peers/minimal_asgi.py --port 8002

No routing, no validation, no logging, no metrics: what serving costs at the least with
this model on uvicorn (uvloop, httptools), one worker.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import uvicorn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression


def build_app() -> Any:
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(features.to_numpy(), target)
    columns = list(features.columns)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        records = json.loads(body)["records"]
        x = np.array([[r[c] for c in columns] for r in records], dtype=np.float64)
        proba = model.predict_proba(x)
        answer = json.dumps(
            {"predictions": proba.argmax(axis=1).tolist(), "probabilities": proba.tolist()}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    uvicorn.run(
        build_app(), host="127.0.0.1", port=args.port, log_level="warning", loop="uvloop", http="httptools"
    )
