"""The baseline: a bare uvicorn + httptools ASGI app calling the model inline.

python benchmarks/bare_app.py {noop|iris} MODEL_DIR PORT
"""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn


def make_app(workload: str, model_dir: str) -> Any:
    if workload == "iris":
        import joblib
        import numpy as np

        model = joblib.load(f"{model_dir}/model.pkl")
        classes = ["setosa", "versicolor", "virginica"]

        def predict(body: bytes) -> bytes:
            data = np.array(json.loads(body)["data"], dtype=float)
            return json.dumps([classes[int(i)] for i in model.predict(data)]).encode()
    else:

        def predict(body: bytes) -> bytes:
            return json.dumps(body.decode()).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        out = predict(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


if __name__ == "__main__":
    workload, model_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    uvicorn.run(
        make_app(workload, model_dir),
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
    )
