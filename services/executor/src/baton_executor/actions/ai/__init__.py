"""AI steps: provider wire formats, ``ai.classify`` / ``ai.extract`` and ``ai.agent``."""
