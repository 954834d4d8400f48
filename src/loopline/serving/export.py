"""Packaging a deployment for a cluster: a Dockerfile and Kubernetes manifests.

The container runs `loopline serve --deployment NAME`; where the store and artifacts live
comes from a Secret (`loopline-store`), so the same image serves any environment. The
probes use /ready (models loaded and warmed) and /health (the process answers); the
grace period outlasts the server's own graceful shutdown, so in-flight requests finish
and the prediction log is written when a pod stops. A deployment that declares online
features also needs its online store (`LOOPLINE_ONLINE_STORE`, from the same Secret): the
replicas share it, so it is Redis or PostgreSQL, never a file in a pod. One whose
prediction log hashes inputs needs the hash key (`LOOPLINE_PII_HASH_KEY`, same Secret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from loopline.core.registry import Deployment
from loopline.core.traffic import TrafficPolicy
from loopline.core.version import __version__
from loopline.serving.processes import GRACEFUL_SHUTDOWN_S

PORT = 8000
STORE_SECRET = "loopline-store"
SETTINGS = ("LOOPLINE_STORE_URI", "LOOPLINE_ARTIFACTS_URI", "LOOPLINE_S3_ENDPOINT_URL")
ONLINE_STORE = "LOOPLINE_ONLINE_STORE"
HASH_KEY = "LOOPLINE_PII_HASH_KEY"


def _has_features(deployment: Deployment) -> bool:
    return TrafficPolicy.from_dict(deployment.policy).declared_features is not None


def _settings(deployment: Deployment) -> tuple[str, ...]:
    """The settings its pods read from the Secret."""
    treated = TrafficPolicy.from_dict(deployment.policy).log_treatments
    hashes = (HASH_KEY,) if treated is not None and treated.hash else ()
    return (*SETTINGS, *((ONLINE_STORE,) if _has_features(deployment) else ()), *hashes)


def dockerfile(deployment: Deployment) -> str:
    extras = "postgres,s3,redis" if _has_features(deployment) else "postgres,s3"
    return f"""# Serves loopline deployment {deployment.name!r}. Build: docker build -t IMAGE .
FROM python:3.11-slim
RUN pip install --no-cache-dir "loopline[{extras}]=={__version__}" \\
    && useradd --uid 10001 --no-create-home loopline
USER 10001
EXPOSE {PORT}
CMD ["loopline", "serve", "--deployment", "{deployment.name}", "--host", "0.0.0.0", "--port", "{PORT}"]
"""


def manifests(
    deployment: Deployment, *, image: str, replicas: int, max_replicas: int
) -> list[dict[str, Any]]:
    name = f"loopline-{deployment.name}".replace("_", "-").replace(".", "-")
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "loopline"}
    probe = {"httpGet": {"path": "/ready", "port": PORT}, "periodSeconds": 5, "failureThreshold": 3}
    container = {
        "name": "serve",
        "image": image,
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": [
            {
                "name": key,
                "valueFrom": {
                    "secretKeyRef": {
                        "name": STORE_SECRET,
                        "key": key,
                        "optional": key.endswith("ENDPOINT_URL"),
                    }
                },
            }
            for key in _settings(deployment)
        ],
        "readinessProbe": probe,
        "startupProbe": {**probe, "failureThreshold": 60},
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": PORT},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": False,
        },
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT)},
                    },
                    "spec": {
                        "containers": [container],
                        "terminationGracePeriodSeconds": GRACEFUL_SHUTDOWN_S + 15,
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": replicas,
                "maxReplicas": max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
            },
        },
    ]


def export_deployment(
    deployment: Deployment, directory: Path, *, image: str, replicas: int = 2, max_replicas: int = 10
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    docker = directory / "Dockerfile"
    docker.write_text(dockerfile(deployment))
    kube = directory / "kubernetes.yaml"
    kube.write_text(
        yaml.safe_dump_all(
            manifests(deployment, image=image, replicas=replicas, max_replicas=max_replicas), sort_keys=False
        )
    )
    return [docker, kube]
