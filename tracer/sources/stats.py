"""SourceStats moved to the event contract (tracer/events/stats.py), where the recording
can use it without importing the sources; re-exported for the modules that import it
from here."""

from tracer.events.stats import SourceStats as SourceStats
