"""The producers of triggers: the interval timer and the triggers folder (the HTTP trigger is a route). Each
only builds a :class:`~orchestrator.core.events.Trigger` and puts it on the one queue."""
