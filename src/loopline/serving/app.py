"""The online server: a raw ASGI app (every microsecond of a framework shows at thousands
of requests a second, measured in benchmarks/).

    POST /v1/deployments/{name}/predict    predictions (JSON, CSV or Parquet body)
    POST /v1/deployments/{name}/feedback   ground-truth labels for earlier request ids
    GET  /v1/deployments                   what this server serves
    POST /invocations                      MLflow's scoring protocol (a server of one deployment)
    GET  /health   /ready   /metrics

A deployment that declares online features has them looked up by each request's entity keys
and joined to its rows before routing (`serving.features`: a row's own value of a feature
wins; a missing key, or a missing value without a default, is a 422 naming it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from loopline.core.errors import InvalidInput, LooplineError, SignatureMismatch
from loopline.predictions.log import (
    ERRORS,
    FEEDBACK,
    LogRedaction,
    PredictionChunk,
    PredictionLog,
    RecordChunk,
    label_text,
)
from loopline.serving import payloads
from loopline.serving.features import DeploymentFeatures
from loopline.serving.http import (
    HttpError,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    respond,
    respond_error,
    respond_json,
)
from loopline.serving.log_policy import scrub
from loopline.serving.metrics import ServingMetrics
from loopline.serving.runtime import DeploymentRuntime, RoutingState, ServedArm

log = logging.getLogger("loopline.serving")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ROUTE = re.compile(r"/v1/deployments/(?P<name>[^/]+)/(?P<action>predict|feedback)")


@dataclass(frozen=True)
class HttpOptions:
    """Limits of one request: its body, what the body may decode to, and its time."""

    max_body_bytes: int = 4 * 1024 * 1024
    timeout: float = 30.0
    limits: payloads.Limits = field(default_factory=payloads.Limits)


# JSON bodies up to this size parse on the event loop (a thread hop costs more than they do);
# anything larger, and every CSV or Parquet body, parses in a thread so the server keeps answering.
INLINE_PARSE_BYTES = 64 * 1024


# Labels are matched with the answers of this many days: a label names a recent answer.
FEEDBACK_LOOKBACK_MS = 7 * 86_400_000


class ServingApp:
    def __init__(
        self,
        runtimes: Mapping[str, DeploymentRuntime],
        prediction_log: PredictionLog,
        metrics: ServingMetrics,
        options: HttpOptions = HttpOptions(),
    ) -> None:
        self.runtimes = dict(runtimes)
        self.log = prediction_log
        self.metrics = metrics
        self.options = options
        self._background: set[asyncio.Task[None]] = set()
        self.started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            await self._route(scope, receive, send)
        except HttpError as error:
            if error.status != 499:
                match = _ROUTE.fullmatch(scope["path"])
                # only served names become labels: unknown ones would grow /metrics without bound
                name = match["name"] if match and match["name"] in self.runtimes else ""
                self.metrics.errors.labels(name, str(error.status)).inc()
                await respond_error(send, error)
        except Exception:  # answered here: raised to the server, it would close the connection
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            self.metrics.errors.labels("", "500").inc()
            with contextlib.suppress(RuntimeError):  # the answer had begun: nothing more to say
                await respond_error(send, HttpError(500, "internal error; see the server log"))

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        match = _ROUTE.fullmatch(path)
        if match is not None:
            if method != "POST":
                raise HttpError(405, f"{path} takes POST")
            runtime = self.runtimes.get(match["name"])
            if runtime is None:
                raise HttpError(
                    404, f"no deployment {match['name']!r} on this server", served=sorted(self.runtimes)
                )
            if match["action"] == "predict":
                await self._predict(runtime, scope, receive, send)
            else:
                await self._feedback(runtime, scope, receive, send)
        elif path == "/invocations":  # MLflow's scoring protocol, for its clients and balancers
            if method != "POST":
                raise HttpError(405, f"{path} takes POST")
            if len(self.runtimes) != 1:
                raise HttpError(
                    404, f"{path} answers for a server of one deployment; this one serves "
                    f"{sorted(self.runtimes)}: POST /v1/deployments/NAME/predict",
                )  # fmt: skip
            await self._predict(next(iter(self.runtimes.values())), scope, receive, send)
        elif path == "/health":
            await respond_json(send, 200, {"status": "alive"})
        elif path == "/ready":
            await self._ready(send)
        elif path == "/metrics":
            body, content_type = self.metrics.render()
            await respond(send, 200, body, content_type.encode())
        elif path == "/v1/deployments" and method == "GET":
            await respond_json(
                send, 200, {"deployments": [self._describe(r) for r in self.runtimes.values()]}
            )
        else:
            raise HttpError(404, f"no route {method} {path}")

    # predictions -----------------------------------------------------------------------

    async def _predict(self, runtime: DeploymentRuntime, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state = runtime.state
        if state is None:
            raise HttpError(503, f"deployment {runtime.name!r} is still loading")
        features = state.features
        if features is None:
            await self._answer(runtime, state, scope, receive, send, started)
            return
        # Held from the moment the state is read (no await in between): a refresh that
        # replaces it closes its lookup only once this request is done with it.
        features.acquire()
        try:
            await self._answer(runtime, state, scope, receive, send, started)
        finally:
            features.release()

    async def _answer(
        self,
        runtime: DeploymentRuntime,
        state: RoutingState,
        scope: Scope,
        receive: Receive,
        send: Send,
        started: float,
    ) -> None:
        body = await read_body(scope, receive, self.options.max_body_bytes)
        content_type = header(scope, b"content-type")
        if payloads.is_json(content_type) and len(body) <= INLINE_PARSE_BYTES:
            payload = payloads.parse(content_type, body, self.options.limits)
        else:
            payload = await asyncio.to_thread(payloads.parse, content_type, body, self.options.limits)
        entities = None
        if state.features is not None:  # before routing: the features are the deployment's, not an arm's
            payload = await self._join_features(state.features, payload)
            entities = state.features.entities(payload)  # logged: what the features were looked up by
        key, payload = self._sticky_key(state, scope, payload)
        served = state.answering(key)
        payload = self._declared_fields(runtime.name, state, served, payload)
        request_id = self._request_id(scope)
        try:
            predicted, proba, inputs = await asyncio.wait_for(
                self._score(served, payload), self.options.timeout
            )
        except Exception as exc:
            error = self._as_http_error(exc, runtime.name, served)
            at_ms = time.time_ns() // 1_000_000
            record = {
                "request_id": request_id,
                "arm": served.arm.name,
                "version": served.version.version,
                "status": error.status,
                "error": self._loggable(error.message, state.redaction, payload)[:500],
                "at_ms": at_ms,
            }
            await self.log.append(RecordChunk(ERRORS, runtime.name, at_ms, [record]))
            raise error from None
        seconds = time.perf_counter() - started
        version = served.version
        answer: dict[str, Any] = {
            "request_id": request_id,
            "deployment": runtime.name,
            "arm": served.arm.name,
            "model": version.uri,
            "version": version.version,
            "predictions": _json_ready(predicted),
        }
        if proba is not None:
            answer["probabilities"] = proba
            answer["classes"] = served.model.classes
        # Logged before it is answered: every answer a client sees is in the log (and a full
        # log buffer slows answers down rather than losing rows).
        chunk = self._chunk(
            request_id, runtime.name, served, seconds, inputs, predicted, proba, entities=entities,
            redaction=state.redaction,
        )  # fmt: skip
        await self.log.append(chunk)
        await respond(send, 200, orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY))
        self.metrics.observe(runtime.name, version.version, served.arm.name, seconds, predicted, proba)
        shadow = state.shadow
        if shadow is not None:
            task = asyncio.get_running_loop().create_task(
                self._shadow(runtime.name, shadow, payload, request_id, chunk.at_ms, state.redaction)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _join_features(
        self, features: DeploymentFeatures, payload: payloads.Payload
    ) -> payloads.Payload:
        """The rows with the deployment's online features joined (`serving.features` has the
        rules: missing keys or values without a default are 422s naming them)."""
        try:
            return await asyncio.wait_for(features.join(payload), self.options.timeout)
        except TimeoutError:
            raise HttpError(
                504, f"the online feature store did not answer within {self.options.timeout} s"
            ) from None

    def _as_http_error(self, exc: Exception, deployment: str, served: ServedArm) -> HttpError:
        if isinstance(exc, SignatureMismatch):
            return HttpError(422, str(exc), problems=exc.problems)
        if isinstance(exc, InvalidInput):
            return HttpError(422, str(exc))
        if isinstance(exc, TimeoutError):
            return HttpError(504, f"the model did not answer within {self.options.timeout} s")
        if isinstance(exc, ValueError):  # the model's own refusal of a value (an unseen category...)
            return HttpError(422, f"the model refused the input: {str(exc)[:300]}")
        log.error("deployment %s, %s failed", deployment, served.version.uri, exc_info=exc)
        return HttpError(500, f"the model failed: {type(exc).__name__}")  # a server error, said plainly

    async def _score(
        self, served: ServedArm, payload: payloads.Payload
    ) -> tuple[np.ndarray, np.ndarray | None, Any]:
        if served.scorer is not None:
            matrix = payload.matrix(served.columns)
            if matrix is not None and not np.isnan(matrix).any():
                if served.batcher is not None:
                    predicted, proba = await served.batcher.score(matrix)
                else:
                    predicted, proba = served.scorer(matrix)
                return predicted, proba, matrix
        # Everything else (DataFrame signatures, pickled models) runs in a thread: such a
        # model may be slow, and the loop keeps serving (and can time the request out).
        return await asyncio.to_thread(served.model.score, payload.to_frame())

    def _chunk(
        self,
        request_id: str,
        deployment: str,
        served: ServedArm,
        seconds: float,
        inputs: Any,
        predicted: Any,
        proba: Any,
        at_ms: int | None = None,
        entities: dict[str, list[Any]] | None = None,
        redaction: LogRedaction | None = None,
    ) -> PredictionChunk:
        return PredictionChunk(
            request_id=request_id,
            at_ms=time.time_ns() // 1_000_000 if at_ms is None else at_ms,
            deployment=deployment,
            arm=served.arm.name,
            model=served.version.model,
            version=served.version.version,
            latency_ms=seconds * 1000,
            columns=served.columns,
            inputs=inputs,
            predictions=np.asarray(predicted),
            proba=proba,
            classes=served.model.classes,
            entities=entities,
            redaction=redaction,
        )

    @staticmethod
    def _loggable(message: str, redaction: LogRedaction | None, payload: payloads.Payload) -> str:
        """A message as logs keep it: without the values of treated columns, which a message
        about a bad value may quote."""
        if redaction is None:
            return message
        given = payload.fields()
        values = [v for name in redaction.policy.columns if name in given for v in payload.column(name)]
        return scrub(message, values)

    async def _shadow(
        self,
        deployment: str,
        served: ServedArm,
        payload: payloads.Payload,
        request_id: str,
        at_ms: int,
        redaction: LogRedaction | None = None,
    ) -> None:
        """The shadow arm answers the same request; its answer is logged (at the time of the
        answer it shadows: the two are one answer's pair), never returned."""
        started = time.perf_counter()
        try:
            predicted, proba, inputs = await self._score(served, payload)
        except Exception as exc:  # a failing shadow must never affect the answer
            self.metrics.errors.labels(deployment, "shadow").inc()
            reason = self._loggable(str(exc), redaction, payload)
            log.warning("shadow %s failed on request %s: %s", served.version.uri, request_id, reason)
            return
        seconds = time.perf_counter() - started
        self.metrics.observe(deployment, served.version.version, served.arm.name, seconds, predicted, proba)
        chunk = self._chunk(
            request_id, deployment, served, seconds, inputs, predicted, proba, at_ms, redaction=redaction
        )
        await self.log.append(chunk)

    def _sticky_key(
        self, state: RoutingState, scope: Scope, payload: payloads.Payload
    ) -> tuple[str | None, payloads.Payload]:
        spec = state.policy.key
        if spec is None:
            return None, payload
        where, name = spec.split(":", 1)
        if where == "header":
            value = header(scope, name.lower().encode("latin-1"))
        else:
            value = payload.first_value(name)
            served_columns = next(iter(state.arms.values())).columns
            if name not in served_columns:
                payload = payload.without(name)  # a routing key, not a model input
        if value is None:
            raise HttpError(422, f"this deployment runs an A/B test keyed by {spec}; the request lacks it")
        return str(value), payload

    def _declared_fields(
        self, deployment: str, state: RoutingState, served: ServedArm, payload: payloads.Payload
    ) -> payloads.Payload:
        """The payload without the fields the model does not take, or a 422 naming them:
        the deployment's rule, whatever its traffic policy. The join keys and features of the
        deployment's online features are its own, never extra: dropped when the model does
        not take them."""
        if not served.fields:  # a model without a signature takes what it is given
            return payload
        given = payload.fields()
        extra = [name for name in given if name not in served.fields]
        if not extra:
            return payload
        consumed = frozenset() if state.features is None else state.features.consumed
        if state.extra_fields == "ignore" or all(name in consumed for name in extra):
            return payload.without(*extra)
        extra = [name for name in extra if name not in consumed]  # refused below: these alone
        problems = [
            f"fields {extra[:20]} are not inputs of {served.version.uri}, and deployment {deployment!r} "
            f"refuses such fields (`loopline deployments extra-fields {deployment} ignore` drops them)"
        ]
        missing = [name for name in served.columns if name not in given]
        if missing:
            problems.insert(0, f"missing columns {missing[:20]}")
        raise HttpError(422, "; ".join(problems), problems=problems)

    def _request_id(self, scope: Scope) -> str:
        given = header(scope, b"x-request-id")
        return given if given is not None and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

    # feedback, readiness ---------------------------------------------------------------

    async def _feedback(self, runtime: DeploymentRuntime, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(scope, receive, self.options.max_body_bytes)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise HttpError(400, f"the body is not valid JSON: {exc}") from None
        labels = document.get("labels") if isinstance(document, dict) else None
        if not isinstance(labels, list) or not labels:
            raise HttpError(422, 'send {"labels": [{"request_id": "...", "label": ...}, ...]}')
        at_ms = time.time_ns() // 1_000_000
        records = []
        for i, item in enumerate(labels):
            if (
                not isinstance(item, dict)
                or "label" not in item
                or not isinstance(item.get("request_id"), str)
            ):
                raise HttpError(422, f"labels[{i}] needs a string request_id and a label")
            row = item.get("row", 0)
            if not isinstance(row, int) or row < 0:
                raise HttpError(422, f"labels[{i}].row must be a row number")
            try:
                label = label_text(item["label"])
            except ValueError as exc:
                raise HttpError(422, f"labels[{i}].label: {exc}") from None
            records.append({"request_id": item["request_id"], "row": row, "label": label, "at_ms": at_ms})
        await self.log.append(RecordChunk(FEEDBACK, runtime.name, at_ms, records))
        ids = list(dict.fromkeys(r["request_id"] for r in records))
        answered = await self.log.answered(runtime.name, ids, at_ms - FEEDBACK_LOOKBACK_MS)
        unmatched = [i for i in ids if i not in answered]
        await respond_json(
            send,
            202,
            {"accepted": len(records), "matched": len(ids) - len(unmatched), "unmatched": unmatched[:20]},
        )

    async def _ready(self, send: Send) -> None:
        loading = [name for name, runtime in self.runtimes.items() if runtime.state is None]
        ready = self.started and not loading and not self.log.failing
        answer = {"ready": ready, "loading": loading, "log_failing": self.log.failing}
        await respond_json(send, 200 if ready else 503, {**answer, "log_errors": self.log.errors[-5:]})

    def _describe(self, runtime: DeploymentRuntime) -> dict[str, Any]:
        state = runtime.state
        if state is None:
            return {"name": runtime.name, "loading": True}
        return {
            "name": runtime.name,
            "revision": state.revision,
            "policy": state.policy.to_dict(),
            "arms": {name: arm.version.uri for name, arm in state.arms.items()},
        }

    # lifespan --------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for runtime in self.runtimes.values():
                        await runtime.start()
                    self.log.start()
                except LooplineError as exc:  # a model that cannot be served: said in one line
                    log.error("cannot start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                # What startup loaded (libraries, models) lives as long as the server: moved out
                # of the collector's sight, a full collection stops pausing requests for 100+ ms.
                gc.collect()
                gc.freeze()
                self.started = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def shutdown(self) -> None:
        """In-flight requests are done (the server waited for them); write what they logged."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for runtime in self.runtimes.values():
            await runtime.close()
        await self.log.close()


def _json_ready(values: Any) -> Any:
    """Predictions as orjson can write them: numeric and boolean arrays as they are (fast),
    class labels of text or objects as a list."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "OUS":
        return values.tolist()
    return values
