"""Run monitoring: detectors as pure functions over metric streams, diagnosis, policies, events.

No torch here: detectors take numbers and return findings (`detectors.py`), `diagnosis.py` lists the likely
causes in the order a practitioner checks them, `policies.py` says what each detector does by default
(warn | stop | rollback | off, each with a source), and `monitor.Monitor` ties them together. The trainer
adapter is `tunesmith.training.monitor`.
"""

from tunesmith.monitoring.diagnosis import RunContext, causes_for
from tunesmith.monitoring.events import Detection, Event, summarize
from tunesmith.monitoring.monitor import Monitor
from tunesmith.monitoring.policies import DEFAULT_POLICIES, DETECTORS, MonitorSettings, threshold_names

__all__ = [
    "DEFAULT_POLICIES",
    "DETECTORS",
    "Event",
    "Detection",
    "Monitor",
    "MonitorSettings",
    "RunContext",
    "causes_for",
    "summarize",
    "threshold_names",
]
