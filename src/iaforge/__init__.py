"""iaforge: build introspection adapters (IA) that make fine-tuned LLMs report what they learned."""

__version__ = "0.1.0"
