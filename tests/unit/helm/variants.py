"""Value sets the chart tests render: the defaults and the deployments platform teams run."""

from __future__ import annotations

from typing import Any

ENDPOINTS: dict[str, Any] = {
    "s3": {"endpoint": "http://minio.minio:9000", "accessKeyId": "ak", "secretAccessKey": "sk"},
    "mlflowTracking": {"uri": "http://mlflow.mlflow:5000", "token": "t0ken"},
}

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "single-namespace": {
        **ENDPOINTS,
        "operator": {"watchNamespaces": ["team-a", "team-b"]},
    },
    "cluster-wide": {**ENDPOINTS, "operator": {"clusterWide": True}},
    "serving-gpu": {
        **ENDPOINTS,
        "serving": {
            "enabled": True,
            "auth": {"existingSecret": "serving-token"},
            "gpuWorkers": {"maxReplicas": 8, "gpusPerWorker": 2, "nodeSelector": {"gpu": "a100"}},
            "app": {"autoscaling": {"maxReplicas": 16}, "adapterLruSize": 4},
        },
    },
    "existing-secret": {
        "s3": {"endpoint": "https://s3.eu-west-1.amazonaws.com", "existingSecret": "my-s3"},
        "mlflowTracking": {"uri": "https://mlflow.example.com", "existingSecret": "my-mlflow"},
        "runtimes": {
            "default": {},
            "a100": {
                "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
                "serviceAccountName": "trainer",
                "s3SecretRef": "team-s3",
                "env": {"NCCL_DEBUG": "INFO"},
            },
        },
    },
    "two-replicas": {
        **ENDPOINTS,
        "operator": {"replicas": 2},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}},
        "imagePullSecrets": ["regcred"],
    },
}
