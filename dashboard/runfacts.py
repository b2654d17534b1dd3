"""What a run's ``config.json`` says that a page shows in words: the settings read off its data, and the device it
trains on, as its worker recorded them. Pure reads of the run folder (no Streamlit, no torch); None where the file
is missing (before the run starts) or says nothing.
"""

from __future__ import annotations

from cnfm_core import devices
from cnfm_core.runs import RunDir, RunError

__all__ = ["auto_description", "run_device"]


def auto_description(run: RunDir) -> str | None:
    """The sentence saying what a run's settings read off its data (None before it starts, or if none did)."""
    try:
        auto = run.read_json(run.config).get("auto") if run.config.exists() else None
    except (RunError, OSError, ValueError, AttributeError):
        return None
    return auto.get("description") if isinstance(auto, dict) else None


def run_device(run: RunDir) -> str | None:
    """The device a run trains on, as its worker recorded it in ``config.json`` (None before it starts)."""
    try:
        meta = run.read_json(run.config) if run.config.exists() else {}
    except (RunError, OSError, ValueError):
        return None
    device = meta.get("device")
    return devices.device_label(str(device), str(meta.get("device_name") or "")) if device else None
