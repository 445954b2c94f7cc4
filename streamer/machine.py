"""The machine figures come from, and the memory a process holds: for benchmark reports."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys


def peak_rss_mb() -> float:
    """This process's peak resident memory (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def gpu_memory_mb() -> float | None:
    """GPU memory this process holds, where there is an NVIDIA GPU; None otherwise.

    nvidia-smi sees every runtime's allocations (ONNX Runtime, TensorRT, torch); torch's own peak counter is the
    fallback where nvidia-smi is missing.
    """
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        used = [float(mib) for pid, mib in (line.split(",")[:2] for line in out.splitlines() if "," in line)
                if pid.strip() == str(os.getpid())]
        if used:
            return round(sum(used), 1)
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except Exception:  # a broken CUDA set-up must not break the report
        return None
    return None


# Distributions whose versions decide the figures; the first installed name of each group is reported.
RUNTIME_DISTRIBUTIONS = {
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "onnxruntime": ("onnxruntime-gpu", "onnxruntime"),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11"),
    "torch": ("torch",),
}


def machine_description() -> dict:
    """Where figures come from: CPU model, cores, GPUs (nvidia-smi: name, driver) and runtime versions.

    Nothing is imported: versions come from the installed distributions' metadata.
    """
    import platform
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for key, names in RUNTIME_DISTRIBUTIONS.items():
        for name in names:
            try:
                versions[key] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    gpus = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
            gpus = [line.strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "gpus": gpus, "versions": versions}


def format_machine(machine: dict) -> str:
    """One line for the report's footer."""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    gpus = "; ".join(machine["gpus"]) or "no NVIDIA GPU"
    return f"machine: {machine['cpu']} ({machine['cores']} cores), {gpus}; {versions}"
