"""Train a LoRA on the tiny local assets with the SDK's embedded backend, then list adapters.

Run inside the private network namespace (Ray starts):
    scripts/netns-run .venv/bin/python examples/sdk_lora_embedded.py
"""

from tuneforge.assets.cache import cached_tiny_dataset, cached_tiny_model
from tuneforge.client import Client, JobProgress, cpu_resources, lora_job


def show(progress: JobProgress) -> None:
    """Print each change of state or progress."""
    loss = f"{progress.loss:.4f}" if progress.loss is not None else "-"
    print(f"{progress.state.value:<9} step {progress.step}/{progress.total_steps} loss {loss}")


def main() -> None:
    """Submit, wait with a progress callback, and show the registered adapter."""
    client = Client(backend="local")
    job = lora_job(
        "example-toy",
        dataset=cached_tiny_dataset(),
        instance_prompt="a photo of sks toy",
        base_model=cached_tiny_model(),
        registered_model="example-toy-lora",
        steps=20,
        batch_size=2,
        resolution=64,
        learning_rate=1e-3,
        resources=cpu_resources(),
    )
    if job.name in {j.name for j in client.list()}:
        client.delete(job.name)
    name = client.submit(job)
    finished = client.wait(name, timeout=900, callback=show)
    assert finished.status is not None and finished.status.mlflow is not None
    print("registered:", finished.status.mlflow.model_name, finished.status.mlflow.model_version)
    for adapter in client.adapters():
        print(adapter.name, [v.version for v in adapter.versions], adapter.aliases)


if __name__ == "__main__":
    main()
