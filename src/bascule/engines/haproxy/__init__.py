"""The HAProxy engine: view (decisions) -> render (text) -> engine (apply) + runtime API."""
