"""A local world of outside systems for Baton's reference stories.

One process on 127.0.0.1 speaks the wire formats of an EDR console (signed alert
webhooks), URL and sender reputation, user risk, email metadata and quarantine, a SIEM
search, an HR directory, an identity provider, a case/ticketing system, an IT asset shop,
the Slack Web API and an OpenAI-compatible chat-completions endpoint with scripted
verdicts. It records every call it receives (``GET /_calls``).
"""

__all__: list[str] = []
